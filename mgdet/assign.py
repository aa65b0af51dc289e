"""Label assignment: static IoU matching, Localize to Classify, Classify to Localize, Mutual Guidance.

Every strategy is the same three steps on a per-image ``[G, A]`` criterion matrix, batched as ``[B, G, A]``:

1. **Reservation** (:func:`reserve`): each GT's highest-valued anchor is forced to 1.0 for that GT; then
   each anchor stays a candidate only of the GT on which its value is highest (other entries become 0).
   Ties go to the lower GT index. After this, two GTs never compete for an anchor.
2. **Reference counts** on the reserved IoU_anchor matrix: ``Np`` = candidates >= ``pos_iou`` (the forced
   best anchor included), ``Ni`` = candidates in ``[neg_iou, pos_iou)``.
3. **Labelling**: static thresholds on IoU_anchor, or top-``Np`` (and the next ``Ni``) of a dynamic
   criterion - IoU_regressed for classification (L2C), IoU_amplified = IoU_anchor ** ((sigma - p) / sigma)
   for regression (C2L). A top-k never selects a zero entry: a GT with fewer candidates than k takes only
   its candidates.

Outputs are index tensors: ``cls_gt[b, a]`` = GT index (positive), :data:`NEGATIVE` or :data:`IGNORED`;
``reg_gt[b, a]`` = GT index (regression sample) or :data:`NEGATIVE`. Inputs are detached; no gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mgdet.boxes import box_iou

#: ``cls_gt`` / ``reg_gt`` value of a negative (background) anchor.
NEGATIVE = -1
#: ``cls_gt`` value of an ignored anchor (no classification loss).
IGNORED = -2

STRATEGIES = ("iou", "localize_to_classify", "classify_to_localize", "mutual_guidance")
_NEEDS_BOXES = ("localize_to_classify", "mutual_guidance")
_NEEDS_SCORES = ("classify_to_localize", "mutual_guidance")


@dataclass
class Assignment:
    """Result of :func:`assign` for a batch: GT indices per anchor for each task."""

    cls_gt: Tensor  # [B, A] long: >= 0 positive GT index, NEGATIVE, IGNORED
    reg_gt: Tensor  # [B, A] long: >= 0 regression GT index, NEGATIVE

    @property
    def cls_pos(self) -> Tensor:
        """[B, A] bool: positive for classification."""
        return self.cls_gt >= 0

    @property
    def reg_pos(self) -> Tensor:
        """[B, A] bool: regression sample."""
        return self.reg_gt >= 0

    def disagreement(self) -> Tensor:
        """Fraction of anchors whose classification and regression roles differ (positive vs not)."""
        return (self.cls_pos != self.reg_pos).float().mean()


def reserve(criterion: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Apply the reservation rule to ``criterion [B, G, A]`` (values in [0, 1]) for GTs with ``valid [B, G]``.

    Each valid GT's best anchor is forced to 1.0 for that GT, then every anchor is kept only for the GT
    where its value is highest (lowest GT index on ties). Rows of padded GTs must be all 0.
    The reserved matrix has at most one non-zero entry per anchor, so it is returned compactly:

    Returns:
        value ``[B, A]``: the anchor's reserved value for its owner (0 when no valid GT reaches it),
        owner ``[B, A]`` long: the GT index owning the anchor (meaningless where value is 0).
    """
    b, g, a = criterion.shape
    best = criterion.argmax(dim=-1)  # [B, G] best anchor of each GT
    value, owner = criterion.max(dim=1)  # [B, A]; padded GT rows are all 0 (see assign), never above a real one
    # forced entries: anchor best[b, g] -> GT g with value 1.0 (lowest GT index if several force it)
    gt_index = torch.arange(g, device=criterion.device).expand(b, g)
    forced = torch.full((b, a + 1), g, dtype=torch.long, device=criterion.device)
    forced.scatter_reduce_(1, torch.where(valid, best, a), torch.where(valid, gt_index, g), "amin")
    forced = forced[:, :a]  # [B, A]; g = not forced
    is_forced = forced < g
    return torch.where(is_forced, 1.0, value), torch.where(is_forced, forced, owner)


def reserved_matrix(value: Tensor, owner: Tensor, num_gt: int) -> Tensor:
    """Expand the compact result of :func:`reserve` back to the ``[B, G, A]`` reserved matrix."""
    gt_index = torch.arange(num_gt, device=owner.device).view(1, -1, 1)
    return torch.where(owner[:, None, :] == gt_index, value[:, None, :], 0.0)


def _rank_within_owner(value: Tensor, owner: Tensor, num_gt: int) -> Tensor:
    """Rank of each anchor among the anchors of its owner GT, by decreasing value: [B, A] -> [B, A] long.

    A segmented top-k with one sort of ``[B, A]`` instead of a ``[B, G, A]`` top-k.
    """
    b, a = value.shape
    # one stable float64 sort on owner * 2 + (1 - value): exact for float32 values, ties by anchor index
    key = owner.double() * 2 + (1 - value.double())
    order = key.argsort(dim=1, stable=True)  # [B, A] anchors grouped by owner, best first
    sorted_owner = owner.gather(1, order)
    counts = torch.zeros(b, num_gt, dtype=torch.long, device=value.device)
    counts.scatter_add_(1, owner, torch.ones_like(owner))
    start = counts.cumsum(1) - counts  # [B, G] first sorted position of each GT's anchors
    rank_sorted = torch.arange(a, device=value.device) - start.gather(1, sorted_owner)
    return torch.empty_like(rank_sorted).scatter_(1, order, rank_sorted)


def _topk_labels(value: Tensor, owner: Tensor, k_pos: Tensor, k_ign: Tensor | None) -> Tensor:
    """Per GT, mark its ``k_pos`` best candidates with the GT index and the next ``k_ign`` as IGNORED.

    value / owner ``[B, A]`` from :func:`reserve`, k_pos / k_ign ``[B, G]`` long.
    Returns ``[B, A]`` long labels, NEGATIVE elsewhere. Zero entries are never selected.
    """
    rank = _rank_within_owner(value, owner, k_pos.shape[1])  # [B, A]
    live = value > 0
    pos = live & (rank < k_pos.gather(1, owner))
    out = torch.where(pos, owner, NEGATIVE)
    if k_ign is not None:
        ign = live & ~pos & (rank < (k_pos + k_ign).gather(1, owner))
        out = torch.where(ign, IGNORED, out)
    return out


def _amplified_matrix(iou_anchor: Tensor, pred_scores: Tensor, gt_labels: Tensor, sigma: float) -> Tensor:
    """IoU_amplified ``[B, G, A]`` with p = score of each GT's class; computed on non-zero IoUs only."""
    b, g, a = iou_anchor.nonzero(as_tuple=True)  # pairs that overlap: a small fraction of B x G x A
    p = pred_scores[b, a, gt_labels[b, g].clamp(min=0)]
    out = torch.zeros_like(iou_anchor)
    out[b, g, a] = amplified_iou(iou_anchor[b, g, a], p, sigma)
    return out


def amplified_iou(iou_anchor: Tensor, score: Tensor, sigma: float = 2.0) -> Tensor:
    """Eq. (1) of the paper: IoU_anchor ** ((sigma - p) / sigma); equals IoU_anchor when p = 0."""
    return iou_anchor.clamp(0.0, 1.0) ** ((sigma - score.clamp(0.0, 1.0)) / sigma)


def _validate(
    strategy: str,
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor | None,
    pred_scores: Tensor | None,
    pos_iou: float,
    neg_iou: float,
    sigma: float,
) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown assignment strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if anchors.ndim != 2 or anchors.shape[-1] != 4:
        raise ValueError(f"anchors must be [A, 4] xyxy, got shape {tuple(anchors.shape)}")
    if gt_boxes.ndim != 3 or gt_boxes.shape[-1] != 4:
        raise ValueError(f"gt_boxes must be [B, G, 4] xyxy, got shape {tuple(gt_boxes.shape)}")
    if gt_labels.shape != gt_boxes.shape[:2]:
        raise ValueError(
            f"gt_labels must be [B, G] = {tuple(gt_boxes.shape[:2])} to match gt_boxes, got {tuple(gt_labels.shape)}"
        )
    if gt_labels.dtype.is_floating_point:
        raise ValueError("gt_labels must be an integer tensor (class index, -1 for padding)")
    b, a = gt_boxes.shape[0], anchors.shape[0]
    if strategy in _NEEDS_BOXES:
        if pred_boxes is None:
            raise ValueError(f"strategy {strategy!r} needs pred_boxes [B, A, 4] (decoded regressed boxes)")
        if pred_boxes.shape != (b, a, 4):
            raise ValueError(f"pred_boxes must be [B, A, 4] = {(b, a, 4)}, got {tuple(pred_boxes.shape)}")
    if strategy in _NEEDS_SCORES:
        if pred_scores is None:
            raise ValueError(f"strategy {strategy!r} needs pred_scores [B, A, C] (sigmoid class scores)")
        if pred_scores.ndim != 3 or pred_scores.shape[:2] != (b, a):
            raise ValueError(f"pred_scores must be [B, A, C] with B={b}, A={a}, got {tuple(pred_scores.shape)}")
        if gt_labels.numel() and int(gt_labels.max()) >= pred_scores.shape[-1]:
            raise ValueError(
                f"gt_labels has class {int(gt_labels.max())} but pred_scores has {pred_scores.shape[-1]} classes"
            )
        if not sigma > 1.0:
            raise ValueError(f"sigma must be > 1 for a positive amplification exponent, got {sigma}")
    if not 0.0 <= neg_iou <= pos_iou <= 1.0:
        raise ValueError(f"need 0 <= neg_iou <= pos_iou <= 1, got neg_iou={neg_iou}, pos_iou={pos_iou}")


@torch.no_grad()
def assign(
    strategy: str,
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor | None = None,
    pred_scores: Tensor | None = None,
    pos_iou: float = 0.5,
    neg_iou: float = 0.4,
    sigma: float = 2.0,
) -> Assignment:
    """Assign every anchor of every image to a GT (or background) for classification and regression.

    Args:
        strategy: ``"iou"`` | ``"localize_to_classify"`` | ``"classify_to_localize"`` | ``"mutual_guidance"``.
        anchors: ``[A, 4]`` xyxy.
        gt_boxes, gt_labels: ``[B, G, 4]`` xyxy and ``[B, G]`` class indices, ``-1`` marks padding.
        pred_boxes: ``[B, A, 4]`` decoded regressed boxes (L2C and MG).
        pred_scores: ``[B, A, C]`` sigmoid class scores (C2L and MG).
        pos_iou, neg_iou: static thresholds (>= pos positive, >= neg ignored, else negative).
        sigma: amplification of Eq. (1), must be > 1.

    Returns:
        :class:`Assignment` with ``cls_gt`` and ``reg_gt`` ``[B, A]`` long.
    """
    _validate(strategy, anchors, gt_boxes, gt_labels, pred_boxes, pred_scores, pos_iou, neg_iou, sigma)
    gt_boxes = gt_boxes.detach().float()
    if gt_boxes.shape[1] == 0:  # no GT column at all: one padding column keeps every reduction defined
        gt_boxes = gt_boxes.new_zeros(gt_boxes.shape[0], 1, 4)
        gt_labels = gt_labels.new_full((gt_labels.shape[0], 1), -1)
    valid = gt_labels >= 0  # [B, G]
    gt_boxes = torch.where(valid[..., None], gt_boxes, 0.0)  # padding -> empty boxes: IoU 0 with everything

    iou_anchor = box_iou(gt_boxes, anchors.detach().float()[None])  # [B, G, A]
    value, owner = reserve(iou_anchor, valid)  # [B, A] reserved IoU_anchor and its GT
    cls_static = torch.where(value >= pos_iou, owner, torch.where(value >= neg_iou, IGNORED, NEGATIVE))
    reg_static = torch.where(cls_static >= 0, cls_static, NEGATIVE)
    if strategy == "iou":
        return Assignment(cls_static, reg_static)

    num_pos = torch.zeros_like(gt_labels).scatter_add_(1, owner, (value >= pos_iou).long())  # [B, G] Np
    in_band = (value >= neg_iou) & (value < pos_iou)
    num_ign = torch.zeros_like(gt_labels).scatter_add_(1, owner, in_band.long())  # [B, G] Ni

    cls_gt, reg_gt = cls_static, reg_static
    if strategy in _NEEDS_BOXES:
        iou_reg = box_iou(gt_boxes, pred_boxes.detach().float())  # [B, G, A]
        cls_gt = _topk_labels(*reserve(iou_reg, valid), num_pos, num_ign)
    if strategy in _NEEDS_SCORES:
        amplified = _amplified_matrix(iou_anchor, pred_scores.detach().float(), gt_labels, sigma)  # [B, G, A]
        reg_gt = _topk_labels(*reserve(amplified, valid), num_pos, None)
    return Assignment(cls_gt, reg_gt)
