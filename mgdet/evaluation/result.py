"""The evaluation result, its table and its one JSON format (:func:`save_eval_json` / :func:`load_eval_json`)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mgdet.errors import InputFileError
from mgdet.evaluation.coco import COCO_IOU_THRESHOLDS
from mgdet.utils.table import format_table


def json_safe(x: Any) -> Any:
    """NaN -> None, numpy scalars/arrays -> Python, recursively (strict JSON has no NaN)."""
    if isinstance(x, Mapping):
        return {str(k): json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


SUMMARY_KEYS = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR100",
    "voc07_map50",
    "voc07_ap_50_95",
    "voc07_ap75",
)


@dataclass
class EvalResult:
    """Everything ``evaluate`` measured.

    Attributes:
        metrics: flat dict of floats in [0, 1] (NaN when undefined, e.g. APs without small objects):
            COCO ``AP`` (.50:.95), ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl``, ``AR1``, ``AR10``,
            ``AR100``; VOC ``voc07_map50`` (11-point at IoU .5), ``voc07_ap_50_95`` (11-point averaged
            over .50:.05:.95, the paper's Table-1 metric), ``voc07_ap50``, ``voc07_ap75`` (same scheme).
        per_class: one dict per class: ``name``, ``AP``, ``AP50``, ``AP75`` (COCO), ``voc07_AP50``,
            ``voc07_AP_50_95`` and ``num_gt`` (non-ignored boxes). AP values are NaN without ground truth.
        precision: COCO precision [T, R, K] at area "all", maxDets 100 (-1 where a class has no GT),
            for PR curves against ``recall_thresholds`` [R] at ``iou_thresholds`` [T].
        coco_results: detections as a COCO results list (``json.dump`` it for a results file).
        skipped_images: images left out (detections and GT) because they failed to decode under
            ``data.on_error=skip``; one message per image, naming the file.
        misaligned: the misaligned kept detections behind ``metrics["misalign"]`` (set by
            :func:`mgdet.engine.inference.evaluate_model`; see :func:`mgdet.evaluation.misaligned_detections`).
    """

    metrics: dict[str, float]
    per_class: list[dict[str, Any]]
    precision: np.ndarray
    coco_results: list[dict[str, Any]]
    class_names: list[str] = field(default_factory=list)
    iou_thresholds: np.ndarray = field(default_factory=lambda: COCO_IOU_THRESHOLDS.copy())
    recall_thresholds: np.ndarray = field(default_factory=lambda: np.linspace(0.0, 1.0, 101))
    skipped_images: list[str] = field(default_factory=list)
    misaligned: list[dict[str, Any]] = field(default_factory=list)

    @staticmethod
    def table_headers(per_class: bool = False) -> list[str]:
        """Column titles matching ``table(per_class)``."""
        if per_class:
            return ["class", "num_gt", "AP", "AP50", "AP75", "VOC07 AP50", "VOC07 AP50:95"]
        return ["metric", "value"]

    def table(self, per_class: bool = False) -> list[list[Any]]:
        """Rows for a summary table (pair with ``table_headers``; floats are formatted by ``format_table``).

        ``per_class=False``: one ``[metric, value]`` row per headline metric. ``per_class=True``: one row
        per class and a final ``mean`` row (means over classes with ground truth).
        """
        if not per_class:
            return [[k, self.metrics[k]] for k in SUMMARY_KEYS if k in self.metrics]
        rows: list[list[Any]] = [
            [c["name"], c["num_gt"], c["AP"], c["AP50"], c["AP75"], c["voc07_AP50"], c["voc07_AP_50_95"]]
            for c in self.per_class
        ]
        m = self.metrics
        total = sum(int(c["num_gt"]) for c in self.per_class)
        rows.append(["mean", total, m["AP"], m["AP50"], m["AP75"], m["voc07_map50"], m["voc07_ap_50_95"]])
        return rows

    def summary(self, per_class: bool = False, style: str = "box") -> str:
        """The table as text, ready to print."""
        return format_table(self.table(per_class), self.table_headers(per_class), style=style)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with metrics, per-class values and class names (NaN becomes null)."""
        return json_safe(dict(metrics=self.metrics, per_class=self.per_class, class_names=self.class_names))

    def save_json(self, path: str | Path) -> None:
        """Write ``to_dict()`` to ``path`` (strict JSON, without the precision array; see :func:`save_eval_json`)."""
        save_eval_json(self, path, arrays=False)

    def save_coco_results(self, path: str | Path) -> None:
        """Write ``coco_results`` as a COCO results json (loadable with ``COCO.loadRes``)."""
        Path(path).write_text(json.dumps(self.coco_results))


#: The arrays :func:`save_eval_json` adds for PR curves (``mgdet visualize curves --eval-json``).
ARRAY_KEYS = ("precision", "iou_thresholds", "recall_thresholds")


def save_eval_json(result: EvalResult, path: str | Path, arrays: bool = True) -> Path:
    """Write an ``EvalResult`` as strict JSON (NaN becomes null): ``to_dict()`` plus, with ``arrays``, the
    precision array ``[T, R, K]`` and its IoU / recall thresholds (one line); without, indented."""
    data = result.to_dict()
    if arrays:
        data.update({k: json_safe(np.asarray(getattr(result, k))) for k in ARRAY_KEYS})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=None if arrays else 2, allow_nan=False))
    return path


def load_eval_json(path: str | Path) -> dict[str, Any]:
    """Read a file of :func:`save_eval_json` (or ``EvalResult.save_json``); the arrays of :data:`ARRAY_KEYS`
    become numpy arrays when present."""
    try:
        data = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise InputFileError(f"{path}: not a json evaluation file (mgdet eval's metrics.json): {e}") from None
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: not an evaluation file (mgdet eval's metrics.json): no json object")
    for key in ARRAY_KEYS:
        if data.get(key) is not None:
            data[key] = np.asarray(data[key], dtype=np.float64)
    return data
