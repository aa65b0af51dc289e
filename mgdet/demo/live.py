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
    eval_time_s: float  # of the joint evaluation of every detector of the call (one pass over the images)
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
    ``data_root`` (CPU; one pass over the images when their post-processing settings agree); returns the
    evaluations and the validation dataset."""
    import torch

    from mgdet.engine.builders import build_dataset
    from mgdet.engine.config import from_dict
    from mgdet.engine.inference import evaluate_models
    from mgdet.zoo import dataset_fingerprint, load_detector, read_manifest

    fingerprint = dataset_fingerprint(data_root)
    manifests = [read_manifest(name) for name in names]
    cfgs = [from_dict(dict(m["config"]), f"zoo:{m['name']} (stored config)") for m in manifests]
    for cfg in cfgs:
        cfg.data.root = str(data_root)
    dataset = build_dataset(cfgs[0].data, train=False)
    same = []
    for m in manifests:
        shipped = m.get("dataset", {})
        same.append(all(shipped.get(k) == fingerprint[k] for k in ("generator_version", "val_sha256")))
        if not same[-1]:
            log(f"zoo:{m['name']}: {data_root} is not the validation split the zoo was evaluated on (fingerprint "
                f"differs), so its AP will differ from the manifest's")  # fmt: skip
    dets = [load_detector(name) for name in names]
    log(f"evaluating {', '.join('zoo:' + n for n in names)} on {len(dataset)} validation images (live; the frozen "
        "backbone they share is computed once per image)")  # fmt: skip
    t0 = time.perf_counter()
    if all(c.eval == cfgs[0].eval for c in cfgs):  # one pass over the images
        results = evaluate_models(dets, dataset, cfgs[0].eval, torch.device("cpu"), progress=progress)
    else:  # each manifest's own post-processing
        results = [evaluate_models([d], dataset, c.eval, torch.device("cpu"), progress=progress)[0]
                   for d, c in zip(dets, cfgs)]  # fmt: skip
    seconds = time.perf_counter() - t0
    out = []
    for name, m, det, result, ok in zip(names, manifests, dets, results, same):
        out.append(ZooEval(name, str(m.get("strategy", "")), dict(result.metrics), seconds, m, det,
                           result.misaligned, ok))  # fmt: skip
        log(f"zoo:{name}: AP {100 * result.metrics['AP']:.1f}, AP75 {100 * result.metrics['AP75']:.1f}")
    log(f"zoo evaluation: {seconds:.0f} s")
    return out, dataset
