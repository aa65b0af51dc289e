"""ATSS: Adaptive Training Sample Selection (Zhang et al., "Bridging the Gap Between Anchor-based and
Anchor-free Detection via Adaptive Training Sample Selection", CVPR 2020, Algorithm 1).

For every GT, batched over images and GTs (the only loop is over the pyramid levels):

1. **Candidates**: on each level, the ``topk`` (9) *locations* whose centres are closest to the GT centre
   (squared Euclidean distance), and every anchor of those locations: ``topk x per_location`` anchors per
   level, as the authors' code does (``TOPK * num_anchors_per_loc``); with one anchor per location this is
   the paper's k = 9. Exact distance ties go to the lower location index (row-major order).
2. **Threshold** = mean + standard deviation of the candidates' IoU_anchor over all levels together (sample
   standard deviation with Bessel's correction, ``torch.std``'s default used by the authors' code; 0 when a
   GT has a single candidate). Statistics in float64.
3. **Positive** if IoU_anchor >= threshold and the anchor centre lies inside the GT by more than
   :data:`INSIDE_MARGIN` px on every side (the authors' code: ``min(l, t, r, b) > 0.01``).
4. An anchor positive for several GTs goes to the GT of highest IoU_anchor (the lower GT index on an exact
   tie). Hard labels; regression on the positives (``reg_gt == cls_gt``); no ignored anchors.

On FCOS points the anchors are virtual boxes (the ATSS paper's anchor-free setting): see
:mod:`mgdet.assign.fcos`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdet.assign.core import INSIDE_MARGIN, NEGATIVE, Assignment, gt_chunks, ranking_key, resolve_pairs
from mgdet.assign.priors import Priors
from mgdet.boxes import elementwise_iou
from mgdet.strategies import AssignParams

#: Candidate locations per level and GT (the paper's k).
ATSS_TOPK = AssignParams.atss_topk
#: Side of the virtual anchor of a point, in strides (the ATSS paper's anchor-free setting: 8S).
VIRTUAL_ANCHOR_SCALE = 8.0


def virtual_anchors(priors: Priors, scale: float = VIRTUAL_ANCHOR_SCALE) -> Tensor:
    """``[A, 4]`` square boxes of side ``scale * stride`` centred on every prior (FCOS points)."""
    half = priors.strides.float()[:, None] * (scale / 2)  # [A, 1]
    c = priors.centres.float()
    return torch.cat((c - half, c + half), dim=-1)


def atss_candidates(priors: Priors, gt_centres: Tensor, topk: int = ATSS_TOPK) -> Tensor:
    """``[B, G, M]`` long prior indices of every GT's candidates: per level the ``topk`` closest locations
    (ties: lower location index) and all ``priors.per_location`` anchors of each; M is the same for every GT."""
    k_loc = priors.per_location
    within = torch.arange(k_loc, device=gt_centres.device)  # [K]
    out = []
    for sl in priors.level_slices():  # <= 6 pyramid levels
        loc_centres = priors.centres[sl][::k_loc]  # [N_l, 2] one centre per location
        d2 = (gt_centres[:, :, None, :] - loc_centres).square().sum(-1)  # [B, G, N_l]
        k = min(topk, loc_centres.shape[0])
        loc = ranking_key(d2, descending=False).topk(k, dim=-1, largest=False).indices  # [B, G, k]
        idx = sl.start + loc[..., None] * k_loc + within  # [B, G, k, K]
        out.append(idx.flatten(2))
    return torch.cat(out, dim=-1)  # [B, G, M]


def atss_assign(
    priors: Priors,
    gt_boxes: Tensor,
    valid: Tensor,
    boxes: Tensor | None = None,
    topk: int = ATSS_TOPK,
) -> Assignment:
    """ATSS labels (see the module docstring).

    priors: levels, centres and anchor boxes; ``boxes [A, 4]`` replaces ``priors.boxes`` for the IoU (FCOS
    points: virtual anchors). gt_boxes ``[B, G, 4]`` with padded rows zeroed and ``valid [B, G]``
    (:func:`mgdet.assign.core.prepare_gt`). Returns ``Assignment(cls_gt, reg_gt)`` ``[B, A]``, equal.
    """
    boxes = (priors.boxes if boxes is None else boxes).detach().float()
    b, g = valid.shape
    num_a = boxes.shape[0]
    found = [_positives(priors, boxes, gt_boxes[:, part], valid[:, part], topk, part.start)
             for part in gt_chunks(b, g, num_a)]  # fmt: skip
    bi, gi, ai, iou = (torch.cat(x) for x in zip(*found))  # [N] positive (image, GT, prior) and its IoU
    # an anchor positive for several GTs: the highest IoU wins, then the lowest GT index
    owner = resolve_pairs(bi * num_a + ai, gi, iou, b * num_a, g)  # [B * A]; g = no GT
    gt = torch.where(owner < g, owner, NEGATIVE).view(b, num_a)  # [B, A]
    return Assignment(gt, gt.clone())


def _positives(
    priors: Priors, boxes: Tensor, gt_boxes: Tensor, valid: Tensor, topk: int, first_gt: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Steps 1-3 for the GTs of one chunk (``gt_boxes [B, g, 4]``): the positive (image, GT, prior) triples
    (GT indices offset by ``first_gt``) and their IoU_anchor."""
    gt_centres = (gt_boxes[..., :2] + gt_boxes[..., 2:]) / 2  # [B, g, 2]
    cand = atss_candidates(priors, gt_centres, topk)  # [B, g, M]
    m = cand.shape[-1]
    iou = elementwise_iou(gt_boxes[:, :, None], boxes[cand])  # [B, g, M]
    iou64 = iou.double()
    mean = iou64.mean(-1, keepdim=True)  # [B, g, 1]
    std = iou64.std(-1, keepdim=True) if m > 1 else torch.zeros_like(mean)
    centres = priors.centres.float()[cand]  # [B, g, M, 2]
    g4 = gt_boxes[:, :, None]  # [B, g, 1, 4]
    ltrb = torch.cat((centres - g4[..., :2], g4[..., 2:] - centres), dim=-1)  # [B, g, M, 4]
    is_pos = (iou64 >= mean + std) & (ltrb.amin(-1) > INSIDE_MARGIN) & valid[..., None]  # [B, g, M]
    bi, gi, mi = is_pos.nonzero(as_tuple=True)
    return bi, gi + first_gt, cand[bi, gi, mi], iou[bi, gi, mi]
