"""What differs between anchor-based detectors and the anchor-free FCOS, in one object per kind of prior: how the
priors are built from the feature-map sizes, how box outputs decode, how scores are formed and which loss trains
them. :class:`~mgdet.models.detector.Detector` holds one and never asks which kind it has.

A new kind of prior (e.g. another point detector) is one class here with the same five members.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from mgdet import anchors as anchor_lib
from mgdet.assign import Assignment, Priors, anchor_priors, point_priors
from mgdet.assign.fcos import level_ranges
from mgdet.boxes import decode
from mgdet.losses import LossConfig, detection_loss
from mgdet.models.fcos import decode_ltrb, fcos_loss, generate_points


class AnchorKind:
    """Anchor boxes of a layout: SSD box coding, sigmoid class scores, focal + Balanced L1 loss."""

    outputs: tuple[str, ...] = ("cls_logits", "box_deltas")

    def __init__(self, layout: anchor_lib.AnchorLayout) -> None:
        self.layout = layout
        self.per_location = layout.num_anchors

    def priors(self, sizes_hw: Sequence[tuple[int, int]], hw: tuple[int, int], device: torch.device) -> Priors:
        """The anchors of feature maps ``sizes_hw`` for an ``hw`` input."""
        boxes = anchor_lib.generate_anchors(self.layout, hw, sizes_hw).to(device)  # [A, 4]
        return anchor_priors(boxes, self.layout.strides, sizes_hw, self.per_location)

    def decode(self, box_deltas: Tensor, priors: Priors) -> Tensor:
        """``[B, A, 4]`` deltas -> ``[B, A, 4]`` xyxy input pixels."""
        return decode(box_deltas, priors.boxes)

    def scores(self, outputs: dict[str, Tensor]) -> Tensor:
        """``[B, A, C]`` sigmoid class scores."""
        return outputs["cls_logits"].float().sigmoid()

    def loss(
        self, a: Assignment, outputs: dict[str, Tensor], priors: Priors, gt_boxes: Tensor, gt_labels: Tensor,
        cfg: LossConfig,
    ) -> dict[str, Tensor]:  # fmt: skip
        """The loss parts (``loss_cls``, ``loss_reg``) and their positives counts; ``loss`` is their sum."""
        out = detection_loss(a, outputs["cls_logits"], outputs["box_deltas"], priors.boxes, gt_boxes, gt_labels, cfg)
        return {"loss": out["loss_cls"] + out["loss_reg"], **out}


class PointKind:
    """FCOS points (one per location): ltrb box coding in stride units, scores sqrt(class x centerness), focal +
    centerness-weighted GIoU + centerness BCE (:mod:`mgdet.models.fcos`)."""

    outputs: tuple[str, ...] = ("cls_logits", "box_deltas", "centerness")
    per_location = 1
    layout = None

    def __init__(self, strides: Sequence[int]) -> None:
        self.strides = tuple(strides)

    def priors(self, sizes_hw: Sequence[tuple[int, int]], hw: tuple[int, int], device: torch.device) -> Priors:
        """The points of feature maps ``sizes_hw`` with their strides and FCOS scale ranges."""
        points, strides, ranges = generate_points(self.strides, sizes_hw, level_ranges(len(sizes_hw)))
        level_sizes = [h * w for h, w in sizes_hw]
        return point_priors(points.to(device), strides.to(device), ranges.to(device), level_sizes)

    def decode(self, box_deltas: Tensor, priors: Priors) -> Tensor:
        return decode_ltrb(box_deltas, priors.centres, priors.strides)

    def scores(self, outputs: dict[str, Tensor]) -> Tensor:
        cls = outputs["cls_logits"].float().sigmoid()  # [B, A, C]
        return (cls * outputs["centerness"].float().sigmoid()[..., None]).sqrt()

    def loss(
        self, a: Assignment, outputs: dict[str, Tensor], priors: Priors, gt_boxes: Tensor, gt_labels: Tensor,
        cfg: LossConfig,
    ) -> dict[str, Tensor]:  # fmt: skip
        out = fcos_loss(a, outputs["cls_logits"], outputs["box_deltas"], outputs["centerness"], priors.centres,
                        priors.strides, gt_boxes, gt_labels, cfg)  # fmt: skip
        return {"loss": out["loss_cls"] + out["loss_reg"] + out["loss_ctr"], **out}


PriorKind = AnchorKind | PointKind
