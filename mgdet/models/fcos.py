"""FCOS pieces: points, ltrb box coding and the FCOS loss.

Levels: the authors' trunk (FSSD + FPN top-down, 4 levels at strides 8, 16, 32, 64 at 320) instead of
FCOS's P3-P7 - the supplementary says "all other implementation details are the same as in our
paper" - with FCOS scale ranges (0, 64], (64, 128], (128, 256], (256, inf). ``num_levels=5`` gives
strides 8..128 with ranges up to (512, inf).

Box coding: ``box_deltas`` are log distances in stride units, ``(l, t, r, b) = exp(delta) * stride``
(clamped like :func:`mgdet.boxes.decode`), so an untrained head predicts a 2-stride box on each point.
Loss: sigmoid focal loss (mgdet.losses settings) on ``cls_gt`` (the quality focal loss on a soft target:
task-aligned assignment), GIoU loss on ``reg_gt`` weighted by the centerness target, BCE centerness on
``reg_gt`` (for every strategy: the detector stays the same); inference score = sqrt(sigmoid(cls) * sigmoid(ctr)).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mgdet.anchors import grid_centres
from mgdet.assign import Assignment
from mgdet.boxes import box_area, centerness, decode_ltrb  # FCOS geometry lives in mgdet.boxes
from mgdet.losses import LossConfig, classification_loss


def generate_points(
    strides: Sequence[int], sizes_hw: Sequence[tuple[int, int]], ranges: Sequence[tuple[float, float]]
) -> tuple[Tensor, Tensor, Tensor]:
    """Points ``[A, 2]`` (cell centres, xy pixels), strides ``[A]``, ranges ``[A, 2]``; row-major."""
    pts, strd, rng = [], [], []
    for s, (h, w), r in zip(strides, sizes_hw, ranges):
        pts.append(grid_centres(s, (h, w)))
        strd.append(torch.full((h * w,), float(s)))
        rng.append(torch.tensor(r, dtype=torch.float32).expand(h * w, 2))
    return torch.cat(pts), torch.cat(strd), torch.cat(rng)


def giou_loss(pred: Tensor, target: Tensor) -> Tensor:
    """1 - GIoU of aligned boxes [..., 4] xyxy -> [...]."""
    lt = torch.maximum(pred[..., :2], target[..., :2])
    rb = torch.minimum(pred[..., 2:], target[..., 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = box_area(pred) + box_area(target) - inter
    iou = inter / union.clamp(min=1e-6)
    hull = (torch.maximum(pred[..., 2:], target[..., 2:]) - torch.minimum(pred[..., :2], target[..., :2])).prod(-1)
    return 1 - (iou - (hull - union) / hull.clamp(min=1e-6))


def fcos_loss(
    assignment: Assignment,
    cls_logits: Tensor,
    box_deltas: Tensor,
    ctr_logits: Tensor,
    points: Tensor,
    strides: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    cfg: LossConfig | None = None,
) -> dict[str, Tensor]:
    """FCOS losses: cls_logits [B, A, C], box_deltas [B, A, 4], ctr_logits [B, A]; see module docstring."""
    cfg = cfg or LossConfig()
    if cfg.style != "mgdet":
        raise ValueError(f"loss style {cfg.style!r} is implemented for anchor detectors only, not FCOS")
    reg_gt = assignment.reg_gt  # [B, A]
    loss_cls, num_cls_pos = classification_loss(assignment, cls_logits, gt_labels, cfg)  # as every detector

    reg_pos = reg_gt >= 0
    num_reg_pos = reg_pos.sum()
    if num_reg_pos > 0:
        bi, ai = reg_pos.nonzero(as_tuple=True)
        matched = gt_boxes[bi, reg_gt[bi, ai]].float()  # [P, 4]
        pts = points[ai]  # [P, 2]
        ltrb = torch.cat((pts - matched[:, :2], matched[:, 2:] - pts), dim=-1)  # [P, 4]
        ctr_t = centerness(ltrb)  # [P]
        pred = decode_ltrb(box_deltas[bi, ai].float(), pts, strides[ai])  # [P, 4]
        w = ctr_t.clamp(min=1e-6)
        loss_reg = (giou_loss(pred, matched) * w).sum() / w.sum() * cfg.reg_weight
        loss_ctr = F.binary_cross_entropy_with_logits(ctr_logits[bi, ai].float(), ctr_t)
    else:
        loss_reg = box_deltas.sum() * 0.0
        loss_ctr = ctr_logits.sum() * 0.0
    return {
        "loss_cls": loss_cls,
        "loss_reg": loss_reg,
        "loss_ctr": loss_ctr,
        "num_cls_pos": num_cls_pos.detach().float(),
        "num_reg_pos": num_reg_pos.detach().float(),
    }
