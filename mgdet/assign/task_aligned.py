"""Task-aligned assignment (TOOD: Feng et al., "Task-aligned One-stage Object Detection", ICCV 2021, Sec. 3.2;
also the assigner of YOLOv6 / YOLOv8 / PP-YOLOE).

For every GT, batched over images and GTs:

1. **Alignment metric** ``t = s ** alpha * u ** beta`` (TOOD: alpha = 1, beta = 6) with ``s`` the predicted
   sigmoid score of the GT's class and ``u`` = IoU(regressed box, GT) (plain IoU, as TOOD).
2. **Candidates**: priors whose centre lies inside the GT by more than :data:`INSIDE_MARGIN` px (as YOLOv8
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

from mgdet.assign.core import Assignment, ranking_key, resolve_by_max
from mgdet.boxes import box_iou

#: Positives per GT before the conflicts are resolved (TOOD's k).
TAL_TOPK = 13
#: Exponents of the alignment metric t = s ** alpha * u ** beta (TOOD).
TAL_ALPHA = 1.0
TAL_BETA = 6.0


def alignment_metric(score: Tensor, iou: Tensor, alpha: float = TAL_ALPHA, beta: float = TAL_BETA) -> Tensor:
    """``t = score ** alpha * iou ** beta`` (element-wise)."""
    return score.clamp(0.0, 1.0) ** alpha * iou.clamp(0.0, 1.0) ** beta


def task_aligned_assign(
    inside: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor,
    pred_scores: Tensor,
    topk: int = TAL_TOPK,
    alpha: float = TAL_ALPHA,
    beta: float = TAL_BETA,
) -> Assignment:
    """Task-aligned labels and soft targets (see the module docstring).

    inside ``[B, G, A]`` bool: the candidates (prior centre inside a valid GT); gt_boxes ``[B, G, 4]``,
    gt_labels ``[B, G]``; pred_boxes ``[B, A, 4]`` decoded, pred_scores ``[B, A, C]`` sigmoid.
    Returns ``Assignment(cls_gt, reg_gt, cls_target)``, all ``[B, A]``.
    """
    num_a = inside.shape[-1]
    u = box_iou(gt_boxes, pred_boxes.detach().float())  # [B, G, A] IoU(regressed box, GT)
    labels = gt_labels.clamp(min=0)[..., None].expand(-1, -1, num_a)  # [B, G, A]
    s = pred_scores.detach().float().transpose(1, 2).gather(1, labels)  # [B, G, A] score of the GT's class
    t = torch.where(inside, alignment_metric(s, u, alpha, beta), 0.0)  # [B, G, A]
    top = ranking_key(t, descending=True).topk(min(topk, num_a), dim=-1)  # [B, G, k]
    chosen = torch.zeros_like(inside).scatter_(-1, top.indices, top.values > 0)  # [B, G, A]
    gt, won = resolve_by_max(chosen, u)  # [B, A], [B, G, A]
    t_won = torch.where(won, t, 0.0)
    max_t = t_won.amax(-1, keepdim=True)  # [B, G, 1] (> 0 for a GT with positives)
    max_u = torch.where(won, u, 0.0).amax(-1, keepdim=True)
    target = (t_won / max_t.clamp(min=torch.finfo(t.dtype).tiny) * max_u).amax(dim=1)  # [B, A]
    return Assignment(gt, gt.clone(), cls_target=target)
