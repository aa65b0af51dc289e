"""Label assignment over FCOS points: the original FCOS rule and its Mutual Guidance variants.

Same index convention as :mod:`mgdet.assign` (``cls_gt`` / ``reg_gt`` ``[B, A]``: GT index, NEGATIVE, no
IGNORED for FCOS). Everything is batched as ``[B, G, A]``; no Python loop over images, points or GT.

* **static** (``"iou"``, the original FCOS rule): a point is a candidate of a GT when it lies inside the
  box, inside the centre region (radius ``radius * stride`` around the box centre, clipped to the box)
  and the largest of its (l, t, r, b) distances is in its level's range ``(lo, hi]``. A point claimed by
  several GTs goes to the smallest-area one. ``Np`` of a GT = the points it wins.
* **dynamic candidates** (L2C / C2L): points inside the GT box whose level range admits the GT (the
  centre-sampling region is *not* required, so guidance can move positives off-centre but never to a
  wrong level). Each point stays a candidate only of the GT with its highest criterion value (the
  reservation of :func:`mgdet.assign.core.reserve`, first GT on ties); each GT then takes its top-``Np``
  candidates (the exact segmented top-k of :func:`mgdet.assign.core.topk_labels`, ties by lower point
  index), or fewer when it has fewer candidates with a non-zero criterion.
* **localize_to_classify**: classification positives = top-Np by IoU(regressed box, GT); regression
  stays static.
* **classify_to_localize**: regression samples = top-Np by centerness ** ((sigma - p) / sigma), with
  centerness of the point w.r.t. the GT and p the predicted score of the GT's class; classification
  stays static.
* **mutual_guidance**: both.

Where points differ from anchors (:mod:`mgdet.assign.paper`): the candidates are restricted to ``dyn_cand``
(inside the box, right level) before the reservation, and no GT's best point is forced: FCOS's own rule has
no forced match either (a GT without a point in its centre region has ``Np = 0``), and a forced point outside
the box or on a wrong level would break the FCOS regression target. Zero entries are never taken on either.

* **atss** on points: the ATSS paper's anchor-free setting - one virtual square anchor of side ``8 * stride``
  centred on each point (:func:`mgdet.assign.atss.virtual_anchors`), then ATSS exactly as on anchors; the
  FCOS scale ranges are not used.
* **task_aligned** on points: candidates = points inside the GT (any level, no ranges), then the rule of
  :mod:`mgdet.assign.task_aligned`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdet.assign.core import NEGATIVE, Assignment, Reservation, gt_chunks, topk_labels
from mgdet.assign.priors import Priors
from mgdet.boxes import box_area, box_iou, centerness, point_distances  # FCOS geometry lives in mgdet.boxes

#: FCOS scale ranges per level (P3..P7); a 4-level model uses the first three and (256, inf).
FCOS_RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, 256.0), (256.0, 512.0), (512.0, float("inf")))


def level_ranges(num_levels: int) -> list[tuple[float, float]]:
    """FCOS ranges for ``num_levels`` levels starting at stride 8; the last level is open-ended."""
    ranges = list(FCOS_RANGES[:num_levels])
    ranges[-1] = (ranges[-1][0], float("inf"))
    return ranges


def fcos_paper_assign(
    priors: Priors,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    valid: Tensor,
    pred_boxes: Tensor | None,
    pred_scores: Tensor | None,
    *,
    l2c: bool,
    c2l: bool,
    sigma: float,
    radius: float,
) -> Assignment:
    """The FCOS rule (``l2c = c2l = False``) and its L2C / C2L / Mutual Guidance variants over points.

    priors: points (``priors.centres [A, 2]``), strides and FCOS ranges; gt_boxes ``[B, G, 4]`` with padded rows
    zeroed and ``valid [B, G]`` (:func:`mgdet.assign.core.prepare_gt`); pred_boxes ``[B, A, 4]`` decoded (L2C),
    pred_scores ``[B, A, C]`` sigmoid (C2L). Returns ``Assignment(cls_gt [B, A], reg_gt [B, A])``.
    """
    if c2l and not sigma > 1:
        raise ValueError(f"sigma must be > 1, got {sigma}")
    points, strides, ranges = priors.centres.float(), priors.strides, priors.ranges
    if ranges is None:
        raise ValueError("FCOS assignment needs the points' scale ranges (Priors.ranges)")
    b, g = valid.shape
    a = points.shape[0]
    best_area = torch.full((b, a), float("inf"), device=points.device)  # smallest static candidate GT so far
    winner = torch.zeros(b, a, dtype=torch.long, device=points.device)
    l2c_res = Reservation(b, g, a, points.device) if l2c else None
    c2l_res = Reservation(b, g, a, points.device) if c2l else None
    preds = pred_boxes.detach().float() if l2c and pred_boxes is not None else None
    scores = pred_scores.detach().float().transpose(1, 2) if c2l and pred_scores is not None else None  # [B, C, A]
    r = (radius * strides.float())[:, None]  # [A, 1]
    for part in gt_chunks(b, g, a):  # g GTs at a time: no [B, G, A] matrix when G is large
        boxes = gt_boxes[:, part]  # [B, g, 4]
        ltrb = point_distances(points, boxes)  # [B, g, A, 4]
        inside = ltrb.min(dim=-1).values > 0  # [B, g, A]
        max_d = ltrb.max(dim=-1).values
        in_range = (max_d > ranges[:, 0]) & (max_d <= ranges[:, 1])  # [B, g, A]
        cxy = (boxes[..., :2] + boxes[..., 2:]) / 2  # [B, g, 2]
        lo = torch.maximum(cxy[:, :, None] - r, boxes[:, :, None, :2])  # [B, g, A, 2]
        hi = torch.minimum(cxy[:, :, None] + r, boxes[:, :, None, 2:])
        in_centre = ((points > lo) & (points < hi)).all(dim=-1)  # [B, g, A]
        dyn_cand = inside & in_range & valid[:, part, None]
        static_cand = dyn_cand & in_centre
        area = torch.where(static_cand, box_area(boxes)[..., None], float("inf"))  # [B, g, A]
        chunk_area, chunk_winner = area.min(dim=1)  # [B, A]
        smaller = chunk_area < best_area  # strictly: an earlier GT keeps its tie (argmin over all GTs)
        best_area = torch.where(smaller, chunk_area, best_area)
        winner = torch.where(smaller, chunk_winner + part.start, winner)
        if l2c_res is not None:
            assert preds is not None
            l2c_res.add(part, torch.where(dyn_cand, box_iou(boxes, preds), 0.0))  # IoU_regressed
        if c2l_res is not None:
            assert scores is not None
            labels = gt_labels[:, part].clamp(min=0)[..., None].expand(-1, -1, a)  # [B, g, A]
            p = scores.gather(1, labels)  # [B, g, A] score of each GT's class
            c2l_res.add(part, torch.where(dyn_cand, centerness(ltrb) ** ((sigma - p) / sigma), 0.0))
    has = torch.isfinite(best_area)  # [B, A] some GT has the point as a static candidate
    static_gt = torch.where(has, winner, torch.full_like(winner, NEGATIVE))
    num_pos = torch.zeros_like(gt_labels).scatter_add_(1, winner, has.long())  # [B, G] points each GT won

    cls_gt = reg_gt = static_gt
    if l2c_res is not None:
        value, owner = l2c_res.result(valid, force_best=False)
        cls_gt = topk_labels(value, owner, value > 0, num_pos, None)
    if c2l_res is not None:
        value, owner = c2l_res.result(valid, force_best=False)
        reg_gt = topk_labels(value, owner, value > 0, num_pos, None)
    return Assignment(cls_gt=cls_gt, reg_gt=reg_gt)
