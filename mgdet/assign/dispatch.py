"""The entry point :func:`assign`: anchor rules or FCOS point rules, picked from the :class:`Priors` (points carry
their scale ``ranges``). :func:`assign_points` and :func:`assign_fcos` are deprecated aliases (removed in 0.3).

Dispatch is loud: a strategy name must be in :data:`mgdet.strategies.STRATEGY_TABLE` (else ValueError
"unknown assignment strategy") and have code for the kind of prior in :data:`ANCHOR_RULES` /
:data:`POINT_RULES` (else ValueError "has no implementation"); nothing falls through to static matching.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from mgdet.assign.atss import atss_assign, virtual_anchors
from mgdet.assign.core import (
    INSIDE_MARGIN,
    NEGATIVE,
    Assignment,
    all_negative,
    inside_pairs,
    prepare_gt,
    validate_inputs,
)
from mgdet.assign.dynamic import dynamic_assign
from mgdet.assign.fcos import fcos_paper_assign
from mgdet.assign.paper import paper_assign, regressed_iou_target
from mgdet.assign.priors import Priors, point_priors, single_level_priors
from mgdet.assign.task_aligned import task_aligned_assign
from mgdet.strategies import AssignParams


@dataclass(frozen=True)
class Query:
    """One assignment call, inputs prepared (:func:`mgdet.assign.core.prepare_gt`) and options."""

    priors: Priors
    gt_boxes: Tensor  # [B, G, 4] float32, padded rows zeroed
    gt_labels: Tensor  # [B, G] long, -1 padding
    valid: Tensor  # [B, G] bool
    pred_boxes: Tensor | None  # [B, A, 4] decoded
    pred_scores: Tensor | None  # [B, A, C] sigmoid
    params: AssignParams = field(default_factory=AssignParams)


def _paper(l2c: bool, c2l: bool) -> Callable[[Query], Assignment]:
    def rule(q: Query) -> Assignment:
        shared = _reg_from_cls(l2c and c2l, q.params)
        return _soft(l2c, q, _shared(shared, _hard(q, c2l and not shared)))

    def _hard(q: Query, c2l: bool) -> Assignment:
        return paper_assign(q.priors, q.gt_boxes, q.gt_labels, q.valid, q.pred_boxes, q.pred_scores,
                            l2c=l2c, c2l=c2l, pos_iou=q.params.pos_iou, neg_iou=q.params.neg_iou,
                            sigma=q.params.sigma, metric=q.params.mg_metric, alpha=q.params.tal_alpha,
                            beta=q.params.tal_beta, lam=q.params.mg_lambda)  # fmt: skip

    return rule


def _fcos_paper(l2c: bool, c2l: bool) -> Callable[[Query], Assignment]:
    def rule(q: Query) -> Assignment:
        if q.params.mg_metric != "iou" or q.params.mg_lambda != 1.0:
            raise ValueError("mg_metric and mg_lambda / mg_ramp (variants of the paper's rule) are implemented for "
                             "anchors only, not for FCOS points")  # fmt: skip
        shared = _reg_from_cls(l2c and c2l, q.params)
        hard = fcos_paper_assign(q.priors, q.gt_boxes, q.gt_labels, q.valid, q.pred_boxes, q.pred_scores,
                                 l2c=l2c, c2l=c2l and not shared, sigma=q.params.sigma,
                                 radius=q.params.fcos_radius)  # fmt: skip
        return _soft(l2c, q, _shared(shared, hard))

    return rule


def _reg_from_cls(mg: bool, p: AssignParams) -> bool:
    """Whether Mutual Guidance takes its regression samples from its classification positives (``mg_reg: cls``):
    then the C2L half is not computed at all (L2C's labels do not depend on it)."""
    if p.mg_reg not in ("c2l", "cls"):
        raise ValueError(f"mg_reg must be 'c2l' or 'cls', got {p.mg_reg!r}")
    return mg and p.mg_reg == "cls"


def _shared(shared: bool, a: Assignment) -> Assignment:
    """``mg_reg: cls``: the regression samples are the classification positives."""
    return replace(a, reg_gt=torch.where(a.cls_gt >= 0, a.cls_gt, NEGATIVE)) if shared else a


def _soft(l2c: bool, q: Query, a: Assignment) -> Assignment:
    """The L2C / MG positives with the IoU of their regressed box as soft target, when ``mg_soft_target``."""
    if not (l2c and q.params.mg_soft_target):
        return a
    assert q.pred_boxes is not None
    return regressed_iou_target(a, q.gt_boxes, q.pred_boxes)


def _atss(q: Query) -> Assignment:
    return atss_assign(q.priors, q.gt_boxes, q.valid, topk=q.params.atss_topk)


def _atss_points(q: Query) -> Assignment:
    return atss_assign(q.priors, q.gt_boxes, q.valid, boxes=virtual_anchors(q.priors), topk=q.params.atss_topk)


def _task_aligned(q: Query) -> Assignment:
    assert q.pred_boxes is not None and q.pred_scores is not None  # validated: the table says it needs both
    inside = inside_pairs(q.priors.centres.float(), q.gt_boxes, q.valid, INSIDE_MARGIN)  # (bi, gi, ai) [P]
    p = q.params
    a = task_aligned_assign(inside, q.gt_boxes, q.gt_labels, q.pred_boxes, q.pred_scores, p.tal_topk, p.tal_alpha,
                            p.tal_beta)  # fmt: skip
    if p.tal_reg == "tal":
        return a
    if p.tal_reg != "c2l":
        raise ValueError(f"tal_reg must be 'tal' or 'c2l', got {p.tal_reg!r}")
    c2l = (ANCHOR_RULES if q.priors.ranges is None else POINT_RULES)["classify_to_localize"](q)
    return replace(a, reg_gt=c2l.reg_gt)  # TOOD's classification labels, the paper's regression samples


def _dynamic(q: Query) -> Assignment:
    assert q.pred_boxes is not None and q.pred_scores is not None  # validated: the table says it needs both
    p = q.params
    return dynamic_assign(q.priors, q.gt_boxes, q.gt_labels, q.valid, q.pred_boxes, q.pred_scores, sigma=p.sigma,
                          topq=p.mgd_topq)  # fmt: skip


#: The code of every strategy on anchor boxes.
ANCHOR_RULES: dict[str, Callable[[Query], Assignment]] = {
    "iou": _paper(l2c=False, c2l=False),
    "localize_to_classify": _paper(l2c=True, c2l=False),
    "classify_to_localize": _paper(l2c=False, c2l=True),
    "mutual_guidance": _paper(l2c=True, c2l=True),
    "atss": _atss,
    "task_aligned": _task_aligned,
    "mutual_guidance_dynamic": _dynamic,
}
#: The code of every strategy on FCOS points.
POINT_RULES: dict[str, Callable[[Query], Assignment]] = {
    "iou": _fcos_paper(l2c=False, c2l=False),
    "localize_to_classify": _fcos_paper(l2c=True, c2l=False),
    "classify_to_localize": _fcos_paper(l2c=False, c2l=True),
    "mutual_guidance": _fcos_paper(l2c=True, c2l=True),
    "atss": _atss_points,
    "task_aligned": _task_aligned,  # the same rule: candidates are the points inside the GT
    "mutual_guidance_dynamic": _dynamic,  # candidates: points inside the GT on its level; centerness for IoU_anchor
}


def _rule(rules: dict[str, Callable[[Query], Assignment]], strategy: str, kind: str) -> Callable[[Query], Assignment]:
    rule = rules.get(strategy)
    if rule is None:
        raise ValueError(f"assignment strategy {strategy!r} has no implementation for {kind}; "
                         f"implemented: {', '.join(rules)}")  # fmt: skip
    return rule


_ATSS_NEEDS_LEVELS = (
    "atss selects candidates per pyramid level: pass mgdet.assign.Priors "
    "(mgdet.assign.anchor_priors(anchors, strides, feature_sizes, per_location))"
)


@torch.no_grad()
def assign(
    strategy: str,
    priors: Tensor | Priors,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor | None = None,
    pred_scores: Tensor | None = None,
    params: AssignParams | None = None,
    *,
    pos_iou: float | None = None,
    neg_iou: float | None = None,
    sigma: float | None = None,
) -> Assignment:
    """Assign every prior (anchor or FCOS point) of every image to a GT (or background) for classification and
    regression.

    Args:
        strategy: a name of :data:`mgdet.strategies.STRATEGIES` (``"iou"``, ``"mutual_guidance"``, ``"atss"``, ...).
        priors: :class:`Priors` (what the detector passes: levels known; FCOS points carry ``ranges`` and get the
            point rules of :mod:`mgdet.assign.fcos`), or a bare ``[A, 4]`` xyxy anchor tensor, read as one level
            with one anchor per location (``"atss"`` refuses it: it selects per level).
        gt_boxes, gt_labels: ``[B, G, 4]`` xyxy and ``[B, G]`` class indices, ``-1`` marks padding.
        pred_boxes: ``[B, A, 4]`` decoded regressed boxes (L2C, MG, task-aligned).
        pred_scores: ``[B, A, C]`` sigmoid class scores (C2L, MG, task-aligned).
        params: every rule's knobs (:class:`mgdet.strategies.AssignParams`, the published defaults when None);
            ``pos_iou`` / ``neg_iou`` (static thresholds: >= pos positive, >= neg ignored, else negative) and
            ``sigma`` (Eq. (1), > 1), when given, replace those of ``params``.

    Returns:
        :class:`Assignment` with ``cls_gt`` and ``reg_gt`` ``[B, A]`` long (and ``cls_target`` for soft rules).
        FCOS points have no IGNORED label.
    """
    q_params = _params(params, pos_iou=pos_iou, neg_iou=neg_iou, sigma=sigma)
    if isinstance(priors, Priors) and priors.ranges is not None:  # FCOS points
        validate_inputs(strategy, priors.num, gt_boxes, gt_labels, pred_boxes, pred_scores)
        rule = _rule(POINT_RULES, strategy, "FCOS points")
        if gt_boxes.shape[1] == 0:  # no GT column: every point is background
            return all_negative(gt_boxes.shape[0], priors.num, priors.centres.device)
    else:
        if not isinstance(priors, Priors):
            if priors.ndim != 2 or priors.shape[-1] != 4:
                raise ValueError(f"anchors must be [A, 4] xyxy, got shape {tuple(priors.shape)}")
            if strategy == "atss":
                raise ValueError(_ATSS_NEEDS_LEVELS)
            priors = single_level_priors(priors)
        validate_inputs(strategy, priors.num, gt_boxes, gt_labels, pred_boxes, pred_scores)
        rule = _rule(ANCHOR_RULES, strategy, "anchors")
    boxes, labels, valid = prepare_gt(gt_boxes, gt_labels)
    return rule(Query(priors, boxes, labels, valid, pred_boxes, pred_scores, q_params))


def assign_points(
    strategy: str,
    priors: Priors,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor | None = None,
    pred_scores: Tensor | None = None,
    sigma: float | None = None,
    radius: float | None = None,
    params: AssignParams | None = None,
) -> Assignment:
    """Deprecated (removed in 0.3): :func:`assign` picks the point rules from point priors itself."""
    warnings.warn("mgdet.assign.assign_points is deprecated: call mgdet.assign.assign with the point priors "
                  "(and AssignParams(fcos_radius=...))", DeprecationWarning, stacklevel=2)  # fmt: skip
    if priors.ranges is None:
        raise ValueError("assign_points needs FCOS point priors (with ranges): mgdet.assign.point_priors(...)")
    return assign(strategy, priors, gt_boxes, gt_labels, pred_boxes, pred_scores,
                  _params(params, sigma=sigma, fcos_radius=radius))  # fmt: skip


def assign_fcos(
    strategy: str,
    points: Tensor,
    strides: Tensor,
    ranges: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor | None = None,
    pred_scores: Tensor | None = None,
    sigma: float | None = None,
    radius: float | None = None,
) -> Assignment:
    """Deprecated (removed in 0.3): :func:`assign` with ``point_priors(points, strides, ranges, level_sizes)``."""
    warnings.warn("mgdet.assign.assign_fcos is deprecated: call mgdet.assign.assign with "
                  "mgdet.assign.point_priors(points, strides, ranges, level_sizes)", DeprecationWarning,
                  stacklevel=2)  # fmt: skip
    priors = fcos_priors(points, strides, ranges)
    return assign(strategy, priors, gt_boxes, gt_labels, pred_boxes, pred_scores,
                  _params(None, sigma=sigma, fcos_radius=radius))  # fmt: skip


def fcos_priors(points: Tensor, strides: Tensor, ranges: Tensor) -> Priors:
    """Point priors from bare tensors: points ``[A, 2]``, strides ``[A]`` (one value per level, points level by
    level), ranges ``[A, 2]`` (lo, hi]."""
    level_sizes = torch.unique_consecutive(strides, return_counts=True)[1].tolist()
    return point_priors(points, strides, ranges, level_sizes)


def _params(params: AssignParams | None, **given: float | None) -> AssignParams:
    """``params`` (defaults when None) with the explicitly given knobs replaced."""
    return replace(params or AssignParams(), **{k: v for k, v in given.items() if v is not None})
