"""Does an anchor layout fit a dataset? The share of GT boxes that some anchor matches with IoU >= 0.5.

With static matching (positive at IoU_anchor >= 0.5) an object below that gets only its single forced
best anchor; label assignment, and any comparison of assignment rules, is then about a different problem.
``mgdet data check --detector ...`` and ``mgdet reproduce`` print this number.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mgdet.anchors import PAPER_ANCHOR_BASE, best_anchor_iou


@dataclass(frozen=True)
class Coverage:
    """Anchor coverage of one split at one input size."""

    detector: str
    input_size: int
    num_anchors: int
    num_boxes: int
    at_05: float  # share of boxes with a best anchor IoU >= 0.5
    at_04: float  # ... >= 0.4
    median_best_iou: float

    def line(self) -> str:
        """One human-readable line."""
        return (f"anchor coverage ({self.detector}, {self.input_size} px, {self.num_anchors} anchors): "
                f"{100 * self.at_05:.1f} % of {self.num_boxes} boxes have an anchor with IoU >= 0.5, "
                f"{100 * self.at_04:.1f} % >= 0.4, median best IoU {self.median_best_iou:.2f}")  # fmt: skip

    def to_dict(self) -> dict[str, float | int | str]:
        return dict(vars(self))


def input_boxes(records: Sequence, input_size: int) -> Tensor:
    """``[N, 4]`` xyxy boxes of every non-ignored object, scaled as the loaders resize (to S x S)."""
    parts = []
    for r in records:
        keep = ~np.asarray(r.ignore, bool)
        scale = np.array([input_size / r.width, input_size / r.height] * 2, np.float32)
        parts.append(np.asarray(r.boxes, np.float32)[keep] * scale)
    if not parts:
        return torch.zeros(0, 4)
    return torch.from_numpy(np.concatenate(parts).reshape(-1, 4))


def detector_anchors(
    name: str, backbone: str, input_size: int, canonical: bool = False, anchor_base: float = PAPER_ANCHOR_BASE
) -> Tensor | None:
    """``[A, 4]`` anchors the detector really uses at ``input_size`` (None for the anchor-free FCOS)."""
    if name == "fcos":
        return None
    from mgdet.models import build_detector

    with torch.no_grad():
        det = build_detector(name, backbone, 1, input_size=input_size, canonical=canonical, anchor_base=anchor_base)
    return det.priors().boxes


def anchor_coverage_of(boxes: Tensor, anchors: Tensor, detector: str, input_size: int) -> Coverage:
    """:class:`Coverage` of ``boxes [N, 4]`` (input pixels) by ``anchors [A, 4]``."""
    best = best_anchor_iou(boxes, anchors)  # [N]
    n = int(best.numel())
    return Coverage(
        detector=detector,
        input_size=int(input_size),
        num_anchors=int(anchors.shape[0]),
        num_boxes=n,
        at_05=float((best >= 0.5).float().mean()) if n else 1.0,
        at_04=float((best >= 0.4).float().mean()) if n else 1.0,
        median_best_iou=float(best.median()) if n else 1.0,
    )


def records_coverage(
    records: Sequence,
    name: str,
    backbone: str,
    input_size: int,
    canonical: bool = False,
    anchor_base: float = PAPER_ANCHOR_BASE,
) -> Coverage | None:
    """:class:`Coverage` of the boxes of ``records`` (ImageRecords) by the anchors of detector ``name`` on
    ``backbone`` at ``input_size`` (None for the anchor-free FCOS)."""
    anchors = detector_anchors(name, backbone, input_size, canonical, anchor_base)
    if anchors is None:
        return None
    return anchor_coverage_of(input_boxes(records, input_size), anchors, f"{name} {backbone}", input_size)


def config_coverage(cfg) -> Coverage | None:
    """:class:`Coverage` of a run's training split by its detector's anchors at its input size (None: FCOS).

    ``cfg`` is a :class:`mgdet.engine.config.RunConfig`.
    """
    from mgdet.engine.builders import build_dataset, model_kwargs
    from mgdet.models import build_detector

    if cfg.model.name == "fcos":
        return None
    records = build_dataset(cfg.data, train=True).records
    with torch.no_grad():  # the detector training builds (same kwargs), so the same anchors
        det = build_detector(**model_kwargs(cfg, 1))
    size = cfg.data.input_size
    boxes = input_boxes(records, size)
    return anchor_coverage_of(boxes, det.priors().boxes, f"{cfg.model.name} {cfg.model.backbone}", size)
