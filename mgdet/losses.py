"""Sigmoid Focal Loss, Balanced L1 Loss and the detection loss built from an :class:`Assignment`.

Defaults are the values the authors' code used for the paper: focal alpha 0.25, gamma 1.0;
Balanced L1 alpha 0.5, gamma 1.5, beta 0.11. RetinaNet's usual focal gamma is ``LossConfig(focal_gamma=2.0)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from mgdet.assign import IGNORED, Assignment
from mgdet.boxes import decode, encode


@dataclass(frozen=True)
class LossConfig:
    """Loss hyper-parameters (all configurable from the YAML ``loss`` section)."""

    focal_alpha: float = 0.25
    focal_gamma: float = 1.0
    bl1_alpha: float = 0.5
    bl1_gamma: float = 1.5
    bl1_beta: float = 0.11
    reg_weight: float = 1.0
    # "mgdet": the losses above; "authors": the loss of the authors' later code (authors_detection_loss: varifocal
    # + poly-1, quality-weighted Balanced L1 + SIoU, its own constants), anchors only
    style: str = "mgdet"


#: The values of ``LossConfig.style``.
LOSS_STYLES: tuple[str, ...] = ("mgdet", "authors")
#: The authors' later loss (zhanghengdev/MutualGuide@108b4a8, ``authors-later-mg.md`` 2.4-2.5): varifocal alpha,
#: gamma, poly-1 epsilon, classification weight; Balanced L1 and SIoU weights; SIoU's epsilon.
AUTHORS_VFL_ALPHA, AUTHORS_VFL_GAMMA, AUTHORS_POLY_EPS, AUTHORS_CLS_WEIGHT = 0.75, 2.0, 1.0, 2.0
AUTHORS_BL1_WEIGHT, AUTHORS_SIOU_WEIGHT, SIOU_EPS = 1.0, 2.0, 1e-7


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 1.0) -> Tensor:
    """Element-wise focal loss (Lin et al.) on logits and {0, 1} targets of the same shape (no reduction).

    ``FL = -alpha_t (1 - p_t)^gamma log(p_t)``; ``alpha`` weighs positives, ``1 - alpha`` negatives
    (``alpha < 0`` disables the weighting).
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


def quality_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 0.25, gamma: float = 1.0) -> Tensor:
    """Element-wise quality focal loss (Li et al., Generalized Focal Loss; TOOD's classification loss) on logits
    and soft targets in [0, 1] of the same shape (no reduction).

    ``QFL = w * BCE(sigmoid(x), t) * |t - sigmoid(x)|^gamma`` with ``w = alpha`` where ``t > 0`` and
    ``1 - alpha`` where ``t = 0`` (``alpha < 0``: ``w = 1``). With targets in {0, 1} it equals
    :func:`sigmoid_focal_loss`, so a soft target is the only change.
    """
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    loss = ce * (targets - p).abs() ** gamma
    if alpha >= 0:
        loss = loss * torch.where(targets > 0, alpha, 1 - alpha)
    return loss


def balanced_l1_loss(
    pred: Tensor, target: Tensor, alpha: float = 0.5, gamma: float = 1.5, beta: float = 0.11
) -> Tensor:
    """Element-wise Balanced L1 loss (Pang et al., Libra R-CNN), no reduction.

    With ``x = |pred - target|`` and ``b = e^(gamma / alpha) - 1``:
    ``alpha / b * (b x + 1) ln(b x / beta + 1) - alpha x`` for ``x < beta``, else ``gamma x + gamma / b - alpha beta``.
    Both pieces meet (value and slope) at ``x = beta``.
    """
    x = (pred - target).abs()
    b = math.exp(gamma / alpha) - 1
    inner = alpha / b * (b * x + 1) * torch.log(b * x / beta + 1) - alpha * x
    outer = gamma * x + gamma / b - alpha * beta
    return torch.where(x < beta, inner, outer)


def _one_hot_targets(cls_gt: Tensor, cls_logits: Tensor, gt_labels: Tensor) -> Tensor:
    """``[B, A, C]`` float32: 1 at each positive's GT class (``cls_gt [B, A]`` >= 0), 0 elsewhere."""
    cls_pos = cls_gt >= 0
    labels = gt_labels.gather(1, cls_gt.clamp(min=0))  # [B, A] class of the assigned GT
    targets = torch.zeros_like(cls_logits, dtype=torch.float32)
    targets[cls_pos] = F.one_hot(labels[cls_pos], cls_logits.shape[-1]).float()
    return targets


def classification_loss(
    assignment: Assignment, cls_logits: Tensor, gt_labels: Tensor, cfg: LossConfig
) -> tuple[Tensor, Tensor]:
    """The classification loss of every detector: ``(loss_cls, num_cls_pos)``.

    cls_logits ``[B, A, C]``; ``assignment.cls_gt [B, A]`` (GT index, NEGATIVE, IGNORED); gt_labels ``[B, G]``.
    Hard labels: sigmoid focal loss over the non-ignored priors and every class / max(1, #positives). A soft
    target (``assignment.cls_target``, task-aligned) replaces the positives' 1: quality focal loss / max(1, sum
    of the soft targets), as TOOD."""
    cls_gt = assignment.cls_gt  # [B, A]
    cls_pos = cls_gt >= 0
    targets = _one_hot_targets(cls_gt, cls_logits, gt_labels)
    keep = cls_gt != IGNORED  # [B, A]
    num_cls_pos = cls_pos.sum()
    if assignment.cls_target is None:
        focal = sigmoid_focal_loss(cls_logits.float(), targets, cfg.focal_alpha, cfg.focal_gamma)
        norm = num_cls_pos.clamp(min=1).float()
    else:
        soft = torch.where(cls_pos, assignment.cls_target.float(), 0.0)  # [B, A]
        targets = targets * soft[..., None]
        focal = quality_focal_loss(cls_logits.float(), targets, cfg.focal_alpha, cfg.focal_gamma)
        norm = soft.sum().clamp(min=1.0)
    return (focal * keep[..., None]).sum() / norm, num_cls_pos


def detection_loss(
    assignment: Assignment,
    cls_logits: Tensor,
    box_deltas: Tensor,
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    cfg: LossConfig | None = None,
) -> dict[str, Tensor]:
    """Classification loss on ``assignment.cls_gt`` and regression loss on ``assignment.reg_gt``.

    Args:
        assignment: ``cls_gt`` / ``reg_gt`` ``[B, A]``.
        cls_logits: ``[B, A, C]`` raw class logits.
        box_deltas: ``[B, A, 4]`` encoded box predictions (see :func:`mgdet.boxes.encode`).
        anchors: ``[A, 4]`` xyxy; gt_boxes ``[B, G, 4]``; gt_labels ``[B, G]`` (-1 padding).

    With a soft target (``assignment.cls_target`` not None, task-aligned assignment) the positives' GT class
    gets that target instead of 1 and the classification loss is :func:`quality_focal_loss` (same alpha,
    gamma) normalised by max(1, sum of the soft targets), as TOOD; the regression loss is unchanged (Balanced
    L1 on the positives, unweighted).

    Returns:
        ``loss_cls`` = focal loss summed over non-ignored anchors and classes / max(1, #cls positives);
        ``loss_reg`` = Balanced L1 summed over regression samples / max(1, 4 * #reg positives) * reg_weight;
        ``num_cls_pos`` and ``num_reg_pos`` (float tensors, detached).
    """
    cfg = cfg or LossConfig()
    if gt_labels.shape[1] == 0:  # no GT column at all: one padding column keeps the gathers defined
        gt_boxes = gt_boxes.new_zeros(gt_boxes.shape[0], 1, 4)
        gt_labels = gt_labels.new_full((gt_labels.shape[0], 1), -1)
    if cfg.style == "authors":
        return authors_detection_loss(assignment, cls_logits, box_deltas, anchors, gt_boxes, gt_labels)
    if cfg.style != "mgdet":
        raise ValueError(f"loss style must be one of {', '.join(LOSS_STYLES)}, got {cfg.style!r}")
    reg_gt = assignment.reg_gt  # [B, A]
    loss_cls, num_cls_pos = classification_loss(assignment, cls_logits, gt_labels, cfg)

    reg_pos = reg_gt >= 0
    num_reg_pos = reg_pos.sum()
    if num_reg_pos > 0:
        batch_idx, anchor_idx = reg_pos.nonzero(as_tuple=True)
        matched = gt_boxes[batch_idx, reg_gt[batch_idx, anchor_idx]]  # [P, 4]
        target_deltas = encode(matched.float(), anchors[anchor_idx].float())  # [P, 4]
        bl1 = balanced_l1_loss(
            box_deltas[batch_idx, anchor_idx].float(), target_deltas, cfg.bl1_alpha, cfg.bl1_gamma, cfg.bl1_beta
        )
        loss_reg = bl1.sum() / (4 * num_reg_pos) * cfg.reg_weight
    else:
        loss_reg = box_deltas.sum() * 0.0  # keeps the graph connected (DDP needs every parameter used)
    return {
        "loss_cls": loss_cls,
        "loss_reg": loss_reg,
        "num_cls_pos": num_cls_pos.detach().float(),
        "num_reg_pos": num_reg_pos.detach().float(),
    }


def varifocal_poly_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """The authors' later classification loss, element-wise (``authors-later-mg.md`` 2.4): varifocal (positives
    weighted by their target, negatives by ``alpha p^gamma``) plus a poly-1 term ``eps (1 - p_t)^(gamma + 1)``.

    logits, targets ``[..., C]`` (targets in [0, 1]; > 0 marks a positive cell). No reduction."""
    p = logits.sigmoid()
    pos = targets > 0
    weight = torch.where(pos, targets, AUTHORS_VFL_ALPHA * p.pow(AUTHORS_VFL_GAMMA)).detach()
    p_t = torch.where(pos, p, 1 - p)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    return bce * weight + AUTHORS_POLY_EPS * (1 - p_t).pow(AUTHORS_VFL_GAMMA + 1)


def siou(pred: Tensor, target: Tensor) -> Tensor:
    """SIoU (Gevorgyan 2022) of aligned xyxy boxes ``[..., 4]`` as the authors' later code computes it
    (``authors-later-mg.md`` 2.5): IoU - (angle-aware distance cost + shape cost) / 2. An epsilon under the
    centre distance's square root keeps coinciding centres defined (their code divides 0 by 0 there)."""
    px1, py1, px2, py2 = pred.unbind(-1)
    gx1, gy1, gx2, gy2 = target.unbind(-1)
    iw = (torch.minimum(px2, gx2) - torch.maximum(px1, gx1)).clamp(min=0)
    ih = (torch.minimum(py2, gy2) - torch.maximum(py1, gy1)).clamp(min=0)
    inter = iw * ih
    wp, hp, wg, hg = px2 - px1, py2 - py1, gx2 - gx1, gy2 - gy1
    iou = inter / (wp * hp + wg * hg - inter + SIOU_EPS)
    cw = torch.maximum(px2, gx2) - torch.minimum(px1, gx1)  # enclosing box
    ch = torch.maximum(py2, gy2) - torch.minimum(py1, gy1)
    s_cw = ((gx1 + gx2) - (px1 + px2)) / 2
    s_ch = ((gy1 + gy2) - (py1 + py2)) / 2
    rho = torch.sqrt(s_cw**2 + s_ch**2 + SIOU_EPS)
    sin1, sin2 = s_cw.abs() / rho, s_ch.abs() / rho
    sin_alpha = torch.where(sin1 > math.sqrt(2) / 2, sin2, sin1)
    angle = torch.cos(2 * torch.arcsin(sin_alpha.clamp(max=1.0)) - math.pi / 2)
    dist = 2 - torch.exp((angle - 2) * (s_cw / cw) ** 2) - torch.exp((angle - 2) * (s_ch / ch) ** 2)
    shape = (1 - torch.exp(-(wp - wg).abs() / torch.maximum(wp, wg))) ** 4 + (
        1 - torch.exp(-(hp - hg).abs() / torch.maximum(hp, hg))
    ) ** 4
    return iou - 0.5 * (dist + shape)


def authors_detection_loss(
    assignment: Assignment,
    cls_logits: Tensor,
    box_deltas: Tensor,
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
) -> dict[str, Tensor]:
    """The loss of the authors' later code (``LossConfig(style="authors")``; ``authors-later-mg.md`` 2.4-2.5).

    Classification: :func:`varifocal_poly_loss` with target ``cls_target`` (1 for hard labels) at the positives'
    class, summed over the non-ignored anchors and classes, x 2 / max(1, #positive cells). Regression: each sample
    weighted by its quality ``reg_weight`` (1 when the rule gives none) normalised over the batch,
    Balanced L1 (mean over the 4 deltas) + 2 x (1 - SIoU of the decoded box). Differences to their code: ignored
    anchors (the paper's rules) get no classification loss, and the normalisers never divide by 0.
    """
    cls_gt = assignment.cls_gt  # [B, A]
    cls_pos = cls_gt >= 0
    t = torch.ones(cls_gt.shape, device=cls_logits.device) if assignment.cls_target is None else assignment.cls_target
    soft = torch.where(cls_pos, t.float(), 0.0)  # [B, A]
    targets = _one_hot_targets(cls_gt, cls_logits, gt_labels) * soft[..., None]
    keep = (cls_gt != IGNORED)[..., None]
    vfl = varifocal_poly_loss(cls_logits.float(), targets) * keep
    num_cls_pos = cls_pos.sum()
    loss_cls = AUTHORS_CLS_WEIGHT * vfl.sum() / (targets > 0).sum().clamp(min=1).float()

    reg_pos = assignment.reg_gt >= 0
    num_reg_pos = reg_pos.sum()
    if num_reg_pos > 0:
        bi, ai = reg_pos.nonzero(as_tuple=True)
        matched = gt_boxes[bi, assignment.reg_gt[bi, ai]].float()  # [P, 4]
        w = torch.ones(bi.shape[0], device=box_deltas.device)
        if assignment.reg_weight is not None:
            w = assignment.reg_weight[bi, ai].float()
        w = w / w.sum().clamp(min=torch.finfo(w.dtype).tiny)  # batch-wide normalisation
        deltas = box_deltas[bi, ai].float()  # [P, 4]
        anchor = anchors[ai].float()
        bl1 = balanced_l1_loss(deltas, encode(matched, anchor)).mean(-1)  # [P]
        loss_reg = AUTHORS_BL1_WEIGHT * (w * bl1).sum()
        loss_reg = loss_reg + AUTHORS_SIOU_WEIGHT * (w * (1 - siou(decode(deltas, anchor), matched))).sum()
    else:
        loss_reg = box_deltas.sum() * 0.0
    return {
        "loss_cls": loss_cls,
        "loss_reg": loss_reg,
        "num_cls_pos": num_cls_pos.detach().float(),
        "num_reg_pos": num_reg_pos.detach().float(),
    }
