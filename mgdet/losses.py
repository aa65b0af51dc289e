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
from mgdet.boxes import encode


@dataclass(frozen=True)
class LossConfig:
    """Loss hyper-parameters (all configurable from the YAML ``loss`` section)."""

    focal_alpha: float = 0.25
    focal_gamma: float = 1.0
    bl1_alpha: float = 0.5
    bl1_gamma: float = 1.5
    bl1_beta: float = 0.11
    reg_weight: float = 1.0


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


def classification_loss(
    assignment: Assignment, cls_logits: Tensor, gt_labels: Tensor, cfg: LossConfig
) -> tuple[Tensor, Tensor]:
    """The classification loss of every detector: ``(loss_cls, num_cls_pos)``.

    cls_logits ``[B, A, C]``; ``assignment.cls_gt [B, A]`` (GT index, NEGATIVE, IGNORED); gt_labels ``[B, G]``.
    Hard labels: sigmoid focal loss over the non-ignored priors and every class / max(1, #positives). A soft
    target (``assignment.cls_target``, task-aligned) replaces the positives' 1: quality focal loss / max(1, sum
    of the soft targets), as TOOD."""
    c = cls_logits.shape[-1]
    cls_gt = assignment.cls_gt  # [B, A]
    cls_pos = cls_gt >= 0
    labels = gt_labels.gather(1, cls_gt.clamp(min=0))  # [B, A] class of the assigned GT
    targets = torch.zeros_like(cls_logits, dtype=torch.float32)
    targets[cls_pos] = F.one_hot(labels[cls_pos], c).float()
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
