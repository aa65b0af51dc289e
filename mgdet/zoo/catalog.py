"""The zoo's catalogue: where the shipped detectors live, their names, their manifests (torch-free).

A zoo detector is a folder ``<zoo dir>/<name>/`` holding

* ``weights.pth``: the tensors training changed (neck and head), half precision, read with ``weights_only``;
* ``manifest.json``: the weight file's sha256, the ImageNet backbone file it needs (and that file's sha256),
  the model and run configuration, the command that trained it, the dataset fingerprint, the machine, the
  training time, the metrics at the end of training (float32) and those of the stored half-precision file;
* ``history.csv``: the run's per-epoch curves.

The zoo folder is ``mgdet/zoo/detectors`` unless the environment variable ``MGDET_ZOO_DIR`` names another one.
A zoo name is written ``zoo:NAME`` wherever a checkpoint path is accepted.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from mgdet.errors import MgdetError

#: prefix that marks a zoo name where a checkpoint path is expected (``mgdet eval zoo:retinanet_mbv2_mg``)
PREFIX = "zoo:"
#: environment variable naming another zoo folder (tests, a user's own zoo)
ENV_DIR = "MGDET_ZOO_DIR"
WEIGHTS_FILE = "weights.pth"
MANIFEST_FILE = "manifest.json"
HISTORY_FILE = "history.csv"
#: the demo's pair: static IoU matching and Mutual Guidance, same detector, recipe and seed
DEMO_PAIR = ("retinanet_mbv2_iou", "retinanet_mbv2_mg")
#: the dataset file whose hash is the fingerprint of the validation split (with the generator version)
VAL_ANNOTATIONS = "annotations/instances_val.json"
#: largest manifest read (a crafted file cannot make the loader allocate much)
MAX_MANIFEST_BYTES = 1 << 20


class ZooError(MgdetError, ValueError):
    """An unknown zoo name, a damaged manifest, or a weight file that is not the one the manifest names."""


def zoo_dir() -> Path:
    """The zoo folder: ``$MGDET_ZOO_DIR`` when set, else the detectors shipped in the package."""
    env = os.environ.get(ENV_DIR)
    return Path(env) if env else Path(__file__).resolve().parent / "detectors"


def is_zoo_ref(path: str | os.PathLike[str] | None) -> bool:
    """True for ``"zoo:NAME"`` (a zoo detector where a checkpoint path is expected)."""
    return isinstance(path, str) and path.startswith(PREFIX)


def names(root: str | Path | None = None) -> list[str]:
    """The detectors of the zoo (folders with a manifest), sorted."""
    root = Path(root) if root is not None else zoo_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST_FILE).is_file())


def resolve(ref: str, root: str | Path | None = None) -> Path:
    """The folder of zoo detector ``ref`` (``NAME`` or ``zoo:NAME``); an unknown name is a one-line
    :class:`ZooError` listing the known ones."""
    name = ref[len(PREFIX) :] if ref.startswith(PREFIX) else ref
    root = Path(root) if root is not None else zoo_dir()
    known = names(root)
    if name not in known:
        listed = ", ".join(known) if known else f"none (the zoo folder {root} holds no detector)"
        raise ZooError(f"unknown zoo detector {name!r}; known: {listed}")
    return root / name


def read_manifest(ref: str, root: str | Path | None = None) -> dict[str, Any]:
    """The manifest of zoo detector ``ref`` as a dict (checked for the fields the loader needs)."""
    folder = resolve(ref, root)
    path = folder / MANIFEST_FILE
    if path.stat().st_size > MAX_MANIFEST_BYTES:
        raise ZooError(f"{path}: {path.stat().st_size} bytes, more than a manifest can be ({MAX_MANIFEST_BYTES})")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ZooError(f"{path}: not a readable JSON manifest ({' '.join(str(e).split())})") from None
    if not isinstance(manifest, dict):
        raise ZooError(f"{path}: a manifest is a JSON object, got {type(manifest).__name__}")
    for key, kind in (("name", str), ("weights", dict), ("backbone", dict), ("model_config", dict),
                      ("config", dict), ("class_names", list), ("metrics", dict)):  # fmt: skip
        if not isinstance(manifest.get(key), kind):
            raise ZooError(f"{path}: field {key!r} missing or not a {kind.__name__}")
    for key in ("sha256", "file"):
        if not isinstance(manifest["weights"].get(key), str):
            raise ZooError(f"{path}: field 'weights.{key}' missing or not a string")
    if manifest["name"] != folder.name:
        raise ZooError(f"{path}: manifest name {manifest['name']!r} is not its folder's name {folder.name!r}")
    manifest["_dir"] = str(folder)
    return manifest


def dataset_fingerprint(root: str | Path) -> dict[str, str]:
    """Generator version and sha256 of the validation annotations of the benchmark at ``root``.

    The generator is deterministic, so a regenerated benchmark has the fingerprint of the one the zoo was
    evaluated on; ``generator_version`` is ``"unknown"`` for a folder without ``benchmark.json``.
    """
    from mgdet.models.pretrained import sha256_file

    root = Path(root)
    version = "unknown"
    meta = root / "benchmark.json"
    if meta.is_file():
        with contextlib.suppress(OSError, ValueError, AttributeError):
            version = str(json.loads(meta.read_text(encoding="utf-8")).get("generator_version", "unknown"))
    ann = root / VAL_ANNOTATIONS
    digest = sha256_file(ann) if ann.is_file() else "missing"
    return {"generator_version": version, "val_annotations": VAL_ANNOTATIONS, "val_sha256": digest}


def summary_rows(root: str | Path | None = None) -> tuple[list[str], list[list[Any]]]:
    """Headers and one row per zoo detector for ``mgdet zoo``: metrics (%) and where it was trained."""
    headers = ["name", "AP", "AP50", "AP75", "AP stored (fp16)", "steps", "trained on", "train time", "size"]
    rows = []
    for name in names(root):
        m = read_manifest(name, root)
        fp32, fp16 = m["metrics"].get("float32", {}), m["metrics"].get("stored", {})
        rows.append([
            f"zoo:{name}", *(_pct(fp32.get(k)) for k in ("AP", "AP50", "AP75")), _pct(fp16.get("AP")),
            m.get("iters", "-"), short_machine(str(m.get("machine", "-"))), _minutes(m.get("train_time_s")),
            f"{m['weights'].get('bytes', 0) / 1e6:.2f} MB",
        ])  # fmt: skip
    return headers, rows


def short_machine(machine: str) -> str:
    """The CPU (and GPU, if any) of a :func:`mgdet.utils.machine.machine_description` line, with its threads."""
    parts = [p.strip() for p in machine.split(",")]
    threads = next((p[p.index("(") + 1 : p.index(")")] for p in parts if "threads)" in p), "")
    gpu = next((p for p in parts[1:] if "GPU" in p and p != "no GPU" or "NVIDIA" in p), "")
    text = parts[0] + (f" + {gpu}" if gpu else "")
    threads = "1 thread" if threads == "1 threads" else threads
    return f"{text} ({threads})" if threads else text


def _pct(x: Any) -> str:
    return f"{100 * float(x):.1f}" if isinstance(x, int | float) else "-"


def _minutes(s: Any) -> str:
    return f"{float(s) / 60:.1f} min" if isinstance(s, int | float) else "-"
