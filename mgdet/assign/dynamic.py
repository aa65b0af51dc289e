"""The authors' later Mutual Guidance (zhanghengdev/MutualGuide@108b4a8, 2023; ``../shared/authors-later-mg.md``
section 2), strategy ``mutual_guidance_dynamic`` (short ``mgd``): the paper's two criteria with a dynamic count.

For each task, on a per-image ``[G, A]`` quality matrix (built a chunk of GTs at a time):

1. **Reservation** without a forced best prior: each prior stays a candidate only of the GT where its quality is
   highest (ties: the lower GT index, mgdet's deterministic choice where the authors' code keeps every tied GT).
2. **Count** ``k = min(max(1, floor(sum of the GT's mgd_topq (15) best reserved qualities)), #non-zero)``: it grows
   as the predictions improve; a GT whose candidates all went to neighbours gets none.
3. **Top-k** of the reserved quality (ties: lower prior index; never a zero entry).

Classification: quality = IoU_regressed; positives get the soft target t = that IoU (``Assignment.cls_target``).
Regression: quality = min(1, IoU_anchor x exp(p / sigma)), p = the score of the GT's class (the authors' 2021
amplification, not the paper's power form); ``Assignment.reg_weight`` = that quality. No ignored priors.
Counts of the two tasks are independent. Crowded anchor batches take both qualities from windows of the anchor
grid (:mod:`mgdet.assign.sparse`; identical results). On FCOS points (not in the authors' code, which is
anchor-based): the candidates are the points inside the GT on the right level (as mgdet's point rules) and
centerness stands for IoU_anchor.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdet.assign import sparse
from mgdet.assign.core import Assignment, Reservation, gt_chunks, rank_within_owner, topk_labels
from mgdet.assign.priors import Priors
from mgdet.boxes import box_iou, centerness, point_distances


def amplified_exp(iou: Tensor, score: Tensor, sigma: float) -> Tensor:
    """The authors' later amplification: ``min(1, IoU x exp(p / sigma))``."""
    return (iou * torch.exp(score / sigma)).clamp(max=1.0)


def dynamic_counts(value: Tensor, owner: Tensor, num_gt: int, topq: int) -> Tensor:
    """``k [B, G]`` = min(max(1, floor(sum of each GT's ``topq`` best reserved values)), #non-zero values); the
    sum in float64 (exact for float32 qualities, whatever the order)."""
    b = value.shape[0]
    live = value > 0
    rank = rank_within_owner(torch.where(live, value, 0.0), owner, num_gt)  # [B, A]
    top = live & (rank < topq)
    sums = torch.zeros(b, num_gt, dtype=torch.float64, device=value.device)
    sums.scatter_add_(1, owner, torch.where(top, value.double(), 0.0))
    count = torch.zeros(b, num_gt, dtype=torch.long, device=value.device).scatter_add_(1, owner, live.long())
    return torch.minimum(sums.floor().long().clamp(min=1), count)


def _select(res: Reservation, valid: Tensor, topq: int) -> tuple[Tensor, Tensor]:
    """Labels ``[B, A]`` (GT index or NEGATIVE) and each selected prior's quality (0 elsewhere)."""
    value, owner = res.result(valid, force_best=False)
    labels = topk_labels(value, owner, value > 0, dynamic_counts(value, owner, valid.shape[1], topq), None)
    return labels, torch.where(labels >= 0, value, 0.0)


def dynamic_assign(
    priors: Priors,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    valid: Tensor,
    pred_boxes: Tensor,
    pred_scores: Tensor,
    *,
    sigma: float,
    topq: int,
) -> Assignment:
    """See the module docstring. gt_boxes ``[B, G, 4]`` with padded rows zeroed and ``valid [B, G]``
    (:func:`mgdet.assign.core.prepare_gt`); pred_boxes ``[B, A, 4]`` decoded, pred_scores ``[B, A, C]`` sigmoid."""
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    b, g = valid.shape
    a = priors.num
    preds = pred_boxes.detach().float()
    scores = pred_scores.detach().float().transpose(1, 2)  # [B, C, A]
    points = priors.ranges is not None
    cls_res, reg_res = Reservation(b, g, a, preds.device), Reservation(b, g, a, preds.device)
    anchor_blocks = None if points else sparse.windows(priors, gt_boxes, valid)  # crowded anchors: windows
    pred_blocks = None if points else sparse.windows(priors, gt_boxes, valid, preds)
    if anchor_blocks is not None:  # IoU_anchor in windows of the grid
        labels = gt_labels.clamp(min=0)
        for blk in anchor_blocks:
            p = sparse.block_scores(pred_scores.detach().float(), blk, labels)  # [K, R, C, n]
            reg_res.add_block(blk.gt, blk.local, blk.slot, amplified_exp(blk.iou, p, sigma))
    if pred_blocks is not None:  # IoU_regressed in the widened windows
        for blk in pred_blocks:
            cls_res.add_block(blk.gt, blk.local, blk.slot, blk.iou)
    if anchor_blocks is None or pred_blocks is None:  # the rest from the dense chunks
        for part in gt_chunks(b, g, a):  # g GTs at a time: no [B, G, A] matrix when G is large
            boxes = gt_boxes[:, part]  # [B, g, 4]
            cand, base = _point_candidates(priors, boxes, valid[:, part]) if points else (None, None)
            if pred_blocks is None:
                iou_reg = box_iou(boxes, preds)  # [B, g, A]
                if cand is not None:
                    iou_reg = torch.where(cand, iou_reg, 0.0)
                cls_res.add(part, torch.where(valid[:, part, None], iou_reg, 0.0))
            if anchor_blocks is None:
                if base is None:
                    base = box_iou(boxes, priors.boxes.detach().float()[None])  # IoU_anchor [B, g, A]
                p = scores.gather(1, gt_labels[:, part].clamp(min=0)[..., None].expand(-1, -1, a))  # [B, g, A]
                reg_res.add(part, torch.where(valid[:, part, None], amplified_exp(base, p, sigma), 0.0))
    cls_gt, cls_target = _select(cls_res, valid, topq)
    reg_gt, reg_weight = _select(reg_res, valid, topq)
    return Assignment(cls_gt, reg_gt, cls_target=cls_target, reg_weight=reg_weight)


def _point_candidates(priors: Priors, boxes: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """FCOS points: the candidates (inside the GT, on the level whose range holds the GT's largest distance) and
    their centerness, the point analogue of IoU_anchor (0 elsewhere)."""
    assert priors.ranges is not None
    ltrb = point_distances(priors.centres.float(), boxes)  # [B, g, A, 4]
    max_d = ltrb.max(dim=-1).values
    cand = (ltrb.min(dim=-1).values > 0) & (max_d > priors.ranges[:, 0]) & (max_d <= priors.ranges[:, 1])
    cand &= valid[..., None]
    return cand, torch.where(cand, centerness(ltrb), 0.0)
