"""A finished run of the grid -> a zoo detector folder (``mgdet zoo --pack RUN_DIR``, ``scripts/make_zoo.sh``).

The run must be finished (``metrics.json`` of :mod:`mgdet.demo.runner`: metrics at the end of training, the
machine, the training time) and trained with a frozen ImageNet backbone. Its neck and head are stored in half
precision; the stored file is evaluated again (loaded as float32) on the run's validation split, and both
results go into the manifest with the dataset fingerprint. The folder is written next to its destination
and renamed into place: an interrupted pack leaves no half-written detector.
"""

from __future__ import annotations

import csv
import datetime
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import mgdet
from mgdet.errors import OutputError
from mgdet.models.pretrained import sha256_file
from mgdet.zoo.catalog import HISTORY_FILE, MANIFEST_FILE, WEIGHTS_FILE, ZooError, dataset_fingerprint, zoo_dir
from mgdet.zoo.store import backbone_file, backbone_state, split_trained, to_half, weights_bytes

#: the issue's limit for one shipped detector
MAX_DETECTOR_BYTES = 2_500_000
#: metrics recorded in the manifest (fractions)
MANIFEST_METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "misalign")


def zoo_name(run_id: str) -> str:
    """``retinanet_mbv2_mg_s0`` -> ``retinanet_mbv2_mg`` (the zoo holds seed 0 of each cell)."""
    stem, _, seed = run_id.rpartition("_s")
    return stem if stem and seed.isdigit() else run_id


def pack_run(
    run_dir: str | Path,
    out_root: str | Path | None = None,
    name: str | None = None,
    command: str = "",
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: None,
) -> Path:
    """Write zoo detector ``name`` (default: the run id without its seed) from the finished run in ``run_dir``
    into ``out_root`` (default: the zoo folder); returns the detector's folder."""
    from mgdet.demo.runner import load_record
    from mgdet.engine.builders import build_dataset
    from mgdet.engine.checkpoint import load_checkpoint, validate_fields
    from mgdet.engine.config import from_dict
    from mgdet.engine.inference import evaluate_model
    from mgdet.models import build_detector

    run_dir = Path(run_dir)
    record = load_record(run_dir)
    if record is None:
        raise ZooError(f"{run_dir}: not a finished run (no metrics.json); finish it with mgdet reproduce first")
    ckpt = run_dir / "last.pth"
    state = load_checkpoint(ckpt)
    mc = validate_fields(state, ckpt)
    cfg = from_dict(state["config"], f"{ckpt} (stored config)")
    if int(state.get("epoch", 0)) != cfg.train.epochs:
        raise ZooError(f"{ckpt}: {state.get('epoch')} of {cfg.train.epochs} epochs: not the end of training")
    name = name or zoo_name(record.run_id)
    out_root = Path(out_root) if out_root is not None else zoo_dir()
    dest = out_root / name
    if dest.exists() and not overwrite:
        raise OutputError(f"{dest} already exists; pass --overwrite to replace that zoo detector")

    source = cfg.model.pretrained or ""
    if not source:
        raise ZooError(f"{ckpt}: trained without an ImageNet backbone (model.pretrained is empty)")
    weights = state["ema"] if state.get("ema") is not None else state["model"]
    backbone = backbone_state(source)
    half = to_half(split_trained(weights, backbone, str(ckpt)))
    blob = weights_bytes(half)
    if len(blob) > MAX_DETECTOR_BYTES:
        raise ZooError(f"{ckpt}: {len(blob) / 1e6:.2f} MB of trained tensors in half precision, more than the "
                       f"zoo's {MAX_DETECTOR_BYTES / 1e6:.1f} MB per detector")  # fmt: skip

    # the stored file as the loader will see it: backbone from the ImageNet file, the rest float16 -> float32
    mc["pretrained"] = None
    det = build_detector(**mc)
    det.load_state_dict({**backbone, **{k: v.float() if v.is_floating_point() else v for k, v in half.items()}})
    dataset = build_dataset(cfg.data, train=False)
    log(f"{name}: evaluating the stored half-precision weights on {cfg.data.root} ({cfg.data.val_split})")
    stored = evaluate_model(det.eval(), dataset, cfg.eval, torch.device("cpu"), progress=progress)
    bb_file = backbone_file(source)
    manifest: dict[str, Any] = {
        "name": name,
        "detector": record.detector,
        "strategy": record.strategy,
        "seed": record.seed,
        "config_file": f"configs/benchmark/{record.run_id.rpartition('_s')[0]}.yaml",
        "command": command,
        "weights": {"file": WEIGHTS_FILE, "sha256": "", "bytes": len(blob), "dtype": "float16",
                    "tensors": len(half), "parameters": int(sum(v.numel() for v in half.values()))},
        "backbone": {"source": source, "file": Path(str(bb_file)).name,
                     "sha256": sha256_file(bb_file) if isinstance(bb_file, Path) else "",
                     "note": "frozen during training; loaded from this file, not stored"},
        "model_config": {k: v for k, v in mc.items() if k != "pretrained"},
        "class_names": list(state.get("class_names") or dataset.class_names),
        "config": state["config"],
        "dataset": {"root": str(cfg.data.root), "split": cfg.data.val_split, "images": len(dataset),
                    **dataset_fingerprint(cfg.data.root)},
        "machine": str(record.extra.get("machine", "not recorded")),
        "train_time_s": record.train_time_s,
        "wall_time_s": record.wall_time_s,
        "epochs": record.epochs,
        "iters": record.iters,
        "metrics": {
            "float32": {k: record.metrics[k] for k in MANIFEST_METRICS if k in record.metrics},
            "stored": {k: float(stored.metrics[k]) for k in MANIFEST_METRICS if k in stored.metrics},
            "note": "float32: evaluated by the training run at its end; stored: the half-precision file "
                    "loaded as float32, evaluated when the zoo was packed (same split, same post-processing)",
        },
        "eval": {"score_thresh": cfg.eval.score_thresh, "nms_iou": cfg.eval.nms_iou, "max_det": cfg.eval.max_det,
                 "pre_nms_topk": cfg.eval.pre_nms_topk},
        "mgdet_version": mgdet.__version__,
        "code_commit": _commit(),
        "packed": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }  # fmt: skip
    out_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_root))
    try:
        (tmp / WEIGHTS_FILE).write_bytes(blob)
        manifest["weights"]["sha256"] = sha256_file(tmp / WEIGHTS_FILE)
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1, default=str) + "\n", encoding="utf-8")
        _copy_history(run_dir / "history.csv", tmp / HISTORY_FILE)
        tmp.chmod(0o755)  # mkdtemp makes it private; package data is readable by all
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    ap32, ap16 = manifest["metrics"]["float32"].get("AP", float("nan")), manifest["metrics"]["stored"]["AP"]
    log(f"{name}: AP {100 * ap32:.2f} (float32, end of training), {100 * ap16:.2f} (stored float16); "
        f"{len(blob) / 1e6:.2f} MB -> {dest}")  # fmt: skip
    return dest


def _copy_history(src: Path, dst: Path) -> None:
    """The run's ``history.csv`` (checked to be a CSV with an epoch column)."""
    with src.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "epoch" not in rows[0]:
        raise ZooError(f"{src}: no per-epoch rows")
    shutil.copyfile(src, dst)


def _commit() -> str:
    """The git commit of the code that packed the zoo, when run from a checkout ("" otherwise)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""
