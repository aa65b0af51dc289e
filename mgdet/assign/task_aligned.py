"""Task-aligned assignment (TOOD: Feng et al., "Task-aligned One-stage Object Detection", ICCV 2021, Sec. 3.2;
also the assigner of YOLOv6 / YOLOv8 / PP-YOLOE).

For every GT, batched over images and GTs:

1. **Alignment metric** ``t = s ** alpha * u ** beta`` (TOOD: alpha = 1, beta = 6) with ``s`` the predicted
   sigmoid score of the GT's class and ``u`` = IoU(regressed box, GT) (plain IoU, as TOOD).
2. **Candidates**: priors whose centre lies inside the GT by more than
   :data:`mgdet.assign.core.INSIDE_MARGIN` px (as YOLOv8
   restricts the metric to anchors inside the GT; TOOD takes its top-k first and filters after).
3. Each GT takes its ``topk`` (13) candidates of largest ``t``; an entry with ``t = 0`` is never taken, so a
   GT with fewer candidates takes fewer. Exact ties go to the lower prior index.
4. A prior taken by several GTs goes to the GT with the highest ``u`` (the lower GT index on an exact tie).
5. **Soft target** of a positive: ``t_hat = t / max_t * max_u``, both maxima over that GT's final positives
   (TOOD's normalisation); it is ``Assignment.cls_target``, trained with the quality focal loss
   (:func:`mgdet.losses.quality_focal_loss`). Regression on the positives (``reg_gt == cls_gt``).

No warm-up: the rule is used from the first step (as YOLOv8; TOOD uses ATSS for its first 4 epochs). At
initialisation (class prior 0.01 everywhere, regressed boxes = anchors) ``t`` ranks the candidates by
IoU_anchor, a static-like start.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdet.assign.core import NEGATIVE, Assignment, resolve_pairs, segment_rank
from mgdet.boxes import elementwise_iou
from mgdet.strategies import AssignParams

#: Positives per GT before the conflicts are resolved (TOOD's k).
TAL_TOPK = AssignParams.tal_topk
#: Exponents of the alignment metric t = s ** alpha * u ** beta (TOOD).
TAL_ALPHA = AssignParams.tal_alpha
TAL_BETA = AssignParams.tal_beta


def alignment_metric(score: Tensor, iou: Tensor, alpha: float = TAL_ALPHA, beta: float = TAL_BETA) -> Tensor:
    """``t = score ** alpha * iou ** beta`` (element-wise)."""
    return score.clamp(0.0, 1.0) ** alpha * iou.clamp(0.0, 1.0) ** beta


def task_aligned_assign(
    inside: Tensor | tuple[Tensor, Tensor, Tensor],
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor,
    pred_scores: Tensor,
    topk: int = TAL_TOPK,
    alpha: float = TAL_ALPHA,
    beta: float = TAL_BETA,
) -> Assignment:
    """Task-aligned labels and soft targets (see the module docstring).

    inside ``[B, G, A]`` bool: the candidates (prior centre inside a valid GT), or the candidate pairs
    ``(bi, gi, ai)`` themselves in (image, GT, prior) order (:func:`mgdet.assign.core.inside_pairs`, built a
    chunk of GTs at a time on crowded images); gt_boxes ``[B, G, 4]``,
    gt_labels ``[B, G]``; pred_boxes ``[B, A, 4]`` decoded, pred_scores ``[B, A, C]`` sigmoid.
    Returns ``Assignment(cls_gt, reg_gt, cls_target)``, all ``[B, A]``.

    Computed on the candidate pairs only (a few % of ``B x G x A``): per pair the metric, then a segmented
    rank per GT (:func:`mgdet.assign.core.segment_rank`) and the conflicts (:func:`~mgdet.assign.core.resolve_pairs`).
    """
    b, g, a = gt_boxes.shape[0], gt_boxes.shape[1], pred_boxes.shape[1]
    bi, gi, ai = inside if isinstance(inside, tuple) else inside.nonzero(as_tuple=True)  # [P] candidate pairs
    u = elementwise_iou(gt_boxes[bi, gi], pred_boxes.detach().float()[bi, ai])  # [P] IoU(regressed box, GT)
    s = pred_scores.detach().float()[bi, ai, gt_labels[bi, gi].clamp(min=0)]  # [P] score of the GT's class
    t = alignment_metric(s, u, alpha, beta)  # [P]
    seg = bi * g + gi  # [P] GT id in the batch
    chosen = (segment_rank(seg, t) < topk) & (t > 0)  # each GT's top-k, never a zero entry; ties: lower prior
    bi, gi, ai, u, t, seg = (x[chosen] for x in (bi, gi, ai, u, t, seg))  # [N]
    slot = bi * a + ai  # [N] (image, prior)
    owner = resolve_pairs(slot, gi, u, b * a, g)  # [B * A]; g = no GT
    won = owner[slot] == gi  # [N]
    bi, ai, u, t, seg, slot = (x[won] for x in (bi, ai, u, t, seg, slot))
    max_t = torch.zeros(b * g, device=t.device).scatter_reduce(0, seg, t, "amax")  # [B * G] over final positives
    max_u = torch.zeros(b * g, device=t.device).scatter_reduce(0, seg, u, "amax")
    target = torch.zeros(b * a, device=t.device)
    target[slot] = t / max_t[seg] * max_u[seg]  # t > 0 for every positive, so max_t > 0
    gt = torch.where(owner < g, owner, NEGATIVE).view(b, a)
    return Assignment(gt, gt.clone(), cls_target=target.view(b, a))
