"""The paper's four rules on anchors: static IoU matching, Localize to Classify, Classify to Localize, Mutual
Guidance.

Every rule is the same three steps on a per-image ``[G, A]`` criterion matrix, batched as ``[B, G, A]`` and
built a chunk of GTs at a time (:func:`mgdet.assign.core.gt_chunks`: bounded memory on crowded images):

1. **Reservation** (:func:`mgdet.assign.core.reserve`): each GT's highest-valued anchor is forced to 1.0 for
   that GT; then each anchor stays a candidate only of the GT on which its value is highest (other entries
   become 0). Ties go to the lower GT index. After this, two GTs never compete for an anchor.
2. **Reference counts** on the reserved IoU_anchor matrix: ``Np`` = candidates >= ``pos_iou`` (the forced
   best anchor included), ``Ni`` = candidates in ``[neg_iou, pos_iou)``.
3. **Labelling**: static thresholds on IoU_anchor, or top-``Np`` (and the next ``Ni``) of a dynamic
   criterion - IoU_regressed for classification (L2C), IoU_amplified = IoU_anchor ** ((sigma - p) / sigma)
   for regression (C2L). A top-k never selects a zero entry: a GT with fewer candidates than k takes only
   its candidates.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import Tensor

from mgdet.assign import sparse
from mgdet.assign.core import IGNORED, NEGATIVE, Assignment, Reservation, gt_chunks, topk_labels
from mgdet.assign.priors import Priors
from mgdet.boxes import box_iou, elementwise_iou
from mgdet.strategies import L2C_METRICS, AssignParams


def amplified_iou(iou_anchor: Tensor, score: Tensor, sigma: float = AssignParams.sigma) -> Tensor:
    """Eq. (1) of the paper: IoU_anchor ** ((sigma - p) / sigma); equals IoU_anchor when p = 0."""
    return iou_anchor.clamp(0.0, 1.0) ** ((sigma - score.clamp(0.0, 1.0)) / sigma)


def _class_scores(scores: Tensor, labels: Tensor) -> Tensor:
    """``[B, g, A]``: the score of each GT's class (``labels [B, g]`` >= 0) at every anchor (``scores [B, A, C]``)."""
    b, g = labels.shape
    return scores.transpose(1, 2).gather(1, labels[..., None].expand(b, g, scores.shape[1]))


def _amplified_matrix(iou_anchor: Tensor, pred_scores: Tensor, gt_labels: Tensor, sigma: float) -> Tensor:
    """IoU_amplified ``[B, G, A]`` with p = score of each GT's class; computed on non-zero IoUs only."""
    b, g, a = iou_anchor.nonzero(as_tuple=True)  # pairs that overlap: a small fraction of B x G x A
    p = pred_scores[b, a, gt_labels[b, g].clamp(min=0)]
    out = torch.zeros_like(iou_anchor)
    out[b, g, a] = amplified_iou(iou_anchor[b, g, a], p, sigma)
    return out


def paper_assign(
    priors: Priors,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    valid: Tensor,
    pred_boxes: Tensor | None,
    pred_scores: Tensor | None,
    *,
    l2c: bool,
    c2l: bool,
    pos_iou: float,
    neg_iou: float,
    sigma: float,
    metric: str = "iou",
    alpha: float = AssignParams.tal_alpha,
    beta: float = AssignParams.tal_beta,
    lam: float = AssignParams.mg_lambda,
) -> Assignment:
    """Static matching (``l2c = c2l = False``), L2C, C2L or both (Mutual Guidance); see the module docstring.

    Variants of the paper's rule (issue 25; the defaults are the paper): ``metric = "aligned"`` ranks L2C's
    candidates by TOOD's ``p ** alpha * IoU_regressed ** beta`` instead of IoU_regressed (counts, ignore band
    and C2L unchanged); ``lam`` < 1 interpolates towards static criteria: L2C ranks by
    ``IoU_anchor ** (1 - lam) * criterion ** lam`` and C2L amplifies with ``lam * p`` (``lam = 0``: the static
    labels through the same top-k).

    priors: the anchors (:class:`mgdet.assign.Priors`); gt_boxes ``[B, G, 4]`` with padded rows zeroed and
    ``valid [B, G]`` (:func:`mgdet.assign.core.prepare_gt`); pred_boxes ``[B, A, 4]`` (L2C), pred_scores
    ``[B, A, C]`` (C2L). Crowded batches take IoU_anchor from windows of the anchor grid
    (:mod:`mgdet.assign.sparse`) when the priors are a grid; the results are identical.
    """
    if not 0.0 <= neg_iou <= pos_iou <= 1.0:
        raise ValueError(f"need 0 <= neg_iou <= pos_iou <= 1, got neg_iou={neg_iou}, pos_iou={pos_iou}")
    if c2l and not sigma > 1.0:
        raise ValueError(f"sigma must be > 1 for a positive amplification exponent, got {sigma}")
    b, g = valid.shape
    a = priors.num
    anchors = priors.boxes.detach().float()[None]  # [1, A, 4]
    if metric not in L2C_METRICS:
        raise ValueError(f"mg_metric must be one of {', '.join(L2C_METRICS)}, got {metric!r}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"mg_lambda must be in [0, 1], got {lam}")
    aligned = l2c and metric == "aligned"
    need_scores = (c2l or aligned) and pred_scores is not None
    scores = pred_scores.detach().float() if need_scores else None
    c2l_scores = scores if scores is None or lam == 1.0 else scores * lam  # the ramp: p -> lambda * p
    preds = pred_boxes.detach().float() if l2c and pred_boxes is not None else None
    static = Reservation(b, g, a, anchors.device)
    l2c_res = Reservation(b, g, a, anchors.device) if l2c else None
    c2l_res = Reservation(b, g, a, anchors.device) if c2l else None
    labels = gt_labels.clamp(min=0)
    blocks = sparse.windows(priors, gt_boxes, valid)
    if blocks is not None:  # crowded: the overlapping pairs only, in windows of the anchor grid
        for blk in blocks:
            static.add_block(blk.gt, blk.local, blk.slot, blk.iou)
            if c2l_res is not None:
                assert c2l_scores is not None
                p = sparse.block_scores(c2l_scores, blk, labels)  # [K, R, C, n] score of each GT's class
                c2l_res.add_block(blk.gt, blk.local, blk.slot, amplified_iou(blk.iou, p, sigma))
    else:
        for part in gt_chunks(b, g, a):  # g GTs at a time: no [B, G, A] matrix when G is large
            iou_anchor = box_iou(gt_boxes[:, part], anchors)  # [B, g, A]
            static.add(part, iou_anchor)
            if c2l_res is not None:
                assert c2l_scores is not None
                c2l_res.add(part, _amplified_matrix(iou_anchor, c2l_scores, gt_labels[:, part], sigma))
            del iou_anchor
    if l2c_res is not None:
        assert preds is not None
        blocks = sparse.windows(priors, gt_boxes, valid, preds) if lam == 1.0 else None
        if blocks is not None:  # the anchors whose regressed box can reach the GT, in widened windows
            for blk in blocks:
                crit = blk.iou
                if aligned:
                    assert scores is not None
                    crit = crit.pow(beta).mul_(sparse.block_scores(scores, blk, labels).pow_(alpha))
                l2c_res.add_block(blk.gt, blk.local, blk.slot, crit)
        else:
            for part in gt_chunks(b, g, a):
                crit = box_iou(gt_boxes[:, part], preds)  # IoU_regressed [B, g, A]
                if aligned:
                    assert scores is not None
                    crit = crit.pow_(beta).mul_(_class_scores(scores, labels[:, part]).pow_(alpha))
                if lam != 1.0:  # the ramp: IoU_anchor ** (1 - lambda) * criterion ** lambda
                    crit = box_iou(gt_boxes[:, part], anchors).pow_(1.0 - lam).mul_(crit.pow_(lam))
                l2c_res.add(part, crit)
    value, owner = static.result(valid)  # [B, A] reserved IoU_anchor and its GT
    cls_static = torch.where(value >= pos_iou, owner, torch.where(value >= neg_iou, IGNORED, NEGATIVE))
    reg_static = torch.where(cls_static >= 0, cls_static, NEGATIVE)
    if not (l2c or c2l):
        return Assignment(cls_static, reg_static)

    num_pos = torch.zeros_like(gt_labels).scatter_add_(1, owner, (value >= pos_iou).long())  # [B, G] Np
    in_band = (value >= neg_iou) & (value < pos_iou)
    num_ign = torch.zeros_like(gt_labels).scatter_add_(1, owner, in_band.long())  # [B, G] Ni

    cls_gt, reg_gt = cls_static, reg_static
    if l2c_res is not None:
        val, own = l2c_res.result(valid)
        cls_gt = topk_labels(val, own, val > 0, num_pos, num_ign)
    if c2l_res is not None:
        val, own = c2l_res.result(valid)
        reg_gt = topk_labels(val, own, val > 0, num_pos, None)
    return Assignment(cls_gt, reg_gt)


def regressed_iou_target(a: Assignment, gt_boxes: Tensor, pred_boxes: Tensor) -> Assignment:
    """``a`` with a soft classification target: at every positive, the IoU of its regressed box with its GT
    (``AssignParams.mg_soft_target``, a control of the target's role: the labels are unchanged)."""
    bi, ai = (a.cls_gt >= 0).nonzero(as_tuple=True)
    target = torch.zeros(a.cls_gt.shape, device=a.cls_gt.device)
    target[bi, ai] = elementwise_iou(gt_boxes[bi, a.cls_gt[bi, ai]], pred_boxes.detach().float()[bi, ai])
    return replace(a, cls_target=target)
