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

from mgdet.assign import Assignment
from mgdet.assign.fcos import centerness
from mgdet.boxes import MAX_LOG_DELTA, box_area
from mgdet.losses import LossConfig, quality_focal_loss, sigmoid_focal_loss


def generate_points(
    strides: Sequence[int], sizes_hw: Sequence[tuple[int, int]], ranges: Sequence[tuple[float, float]]
) -> tuple[Tensor, Tensor, Tensor]:
    """Points ``[A, 2]`` (cell centres, xy pixels), strides ``[A]``, ranges ``[A, 2]``; row-major."""
    pts, strd, rng = [], [], []
    for s, (h, w), r in zip(strides, sizes_hw, ranges):
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) * s
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) * s
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        pts.append(torch.stack((cx, cy), dim=-1).reshape(-1, 2))
        strd.append(torch.full((h * w,), float(s)))
        rng.append(torch.tensor(r, dtype=torch.float32).expand(h * w, 2))
    return torch.cat(pts), torch.cat(strd), torch.cat(rng)


def decode_ltrb(deltas: Tensor, points: Tensor, strides: Tensor) -> Tensor:
    """deltas [..., A, 4] (log distances / stride) + points [A, 2] -> boxes [..., A, 4] xyxy."""
    d = torch.exp(deltas.clamp(max=MAX_LOG_DELTA)) * strides[:, None]
    return torch.cat((points - d[..., :2], points + d[..., 2:]), dim=-1)


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
    c = cls_logits.shape[-1]
    cls_gt, reg_gt = assignment.cls_gt, assignment.reg_gt  # [B, A]
    cls_pos = cls_gt >= 0
    labels = gt_labels.gather(1, cls_gt.clamp(min=0))  # [B, A]
    targets = F.one_hot(labels.clamp(min=0), c).float() * cls_pos[..., None]
    keep = (cls_gt >= -1)[..., None]  # IGNORED (-2) never occurs for FCOS but is honoured
    num_cls_pos = cls_pos.sum()
    if assignment.cls_target is None:
        focal = sigmoid_focal_loss(cls_logits.float(), targets, cfg.focal_alpha, cfg.focal_gamma)
        norm = num_cls_pos.clamp(min=1).float()
    else:  # soft target (task-aligned): quality focal loss / sum of the targets, as detection_loss
        soft = torch.where(cls_pos, assignment.cls_target.float(), 0.0)  # [B, A]
        focal = quality_focal_loss(cls_logits.float(), targets * soft[..., None], cfg.focal_alpha, cfg.focal_gamma)
        norm = soft.sum().clamp(min=1.0)
    loss_cls = (focal * keep).sum() / norm

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
