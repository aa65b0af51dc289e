"""The demo's live evaluation of the zoo's trained detectors: numbers computed now, never read from a manifest."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ZooEval:
    """One zoo detector evaluated by this invocation on the validation split at ``data_root``."""

    name: str
    strategy: str
    metrics: dict[str, float]  # fractions, computed now
    eval_time_s: float
    manifest: dict[str, Any]  # how the detector was trained (the shipped provenance)
    detector: Any = None  # the float32 Detector (kept for the report's pictures)
    misaligned: list[dict[str, Any]] = field(default_factory=list)
    fingerprint_matches: bool = True  # the split is the one the manifest's metrics were measured on

    @property
    def shipped_ap(self) -> float:
        """AP of the stored file when the zoo was packed (from the manifest, for comparison only)."""
        return float(self.manifest["metrics"].get("stored", {}).get("AP", float("nan")))


def evaluate_zoo(
    names: Sequence[str],
    data_root: str | Path,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[list[ZooEval], Any]:
    """Load each zoo detector of ``names`` and evaluate it on the validation split of the benchmark at
    ``data_root`` (CPU); returns the evaluations and the validation dataset."""
    import torch

    from mgdet.engine.builders import build_dataset
    from mgdet.engine.config import from_dict
    from mgdet.engine.inference import evaluate_model
    from mgdet.zoo import dataset_fingerprint, load_detector, read_manifest

    fingerprint = dataset_fingerprint(data_root)
    dataset = None
    out = []
    for name in names:
        manifest = read_manifest(name)
        cfg = from_dict(dict(manifest["config"]), f"zoo:{name} (stored config)")
        cfg.data.root = str(data_root)
        if dataset is None:
            dataset = build_dataset(cfg.data, train=False)
        shipped = manifest.get("dataset", {})
        same = all(shipped.get(k) == fingerprint[k] for k in ("generator_version", "val_sha256"))
        if not same:
            log(f"zoo:{name}: {data_root} is not the validation split the zoo was evaluated on (fingerprint "
                f"differs), so its AP will differ from the manifest's")  # fmt: skip
        det = load_detector(name)
        t0 = time.perf_counter()
        log(f"zoo:{name}: evaluating on {len(dataset)} validation images (live)")
        result = evaluate_model(det, dataset, cfg.eval, torch.device("cpu"), progress=progress)
        out.append(ZooEval(name, str(manifest.get("strategy", "")), dict(result.metrics),
                           time.perf_counter() - t0, manifest, det, result.misaligned, same))  # fmt: skip
        log(f"zoo:{name}: AP {100 * result.metrics['AP']:.1f}, AP75 {100 * result.metrics['AP75']:.1f} "
            f"({out[-1].eval_time_s:.0f} s)")  # fmt: skip
    return out, dataset
