"""Slow reference implementations of the assignment rules: a loop over images and GTs, written
independently of the batched code (no shared helper: stable sorts instead of :func:`~mgdet.assign.core.ranking_key`,
Python statistics, per-anchor conflict resolution). For tests and benchmarks only; training never calls them.

Each function takes the same inputs as the batched rule and returns the same tensors, so a test (or
``benchmarks/assign_speed.py``) can compare them exactly on inputs without near-ties.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mgdet.assign.core import IGNORED, NEGATIVE, Assignment
from mgdet.assign.priors import Priors
from mgdet.boxes import box_iou
from mgdet.strategies import AssignParams

#: The centre-inside margin of ATSS and task-aligned assignment (px), restated here on purpose.
MARGIN = 0.01


def _valid_gts(gt_labels: Tensor, b: int) -> list[int]:
    return [g for g in range(gt_labels.shape[1]) if int(gt_labels[b, g]) >= 0]


def _inside(centre: tuple[float, float], box: list[float]) -> bool:
    x, y = centre
    return min(x - box[0], y - box[1], box[2] - x, box[3] - y) > MARGIN


def reference_paper(
    strategy: str,
    anchors: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor | None,
    pred_scores: Tensor | None,
    pos: float = AssignParams.pos_iou,
    neg: float = AssignParams.neg_iou,
    sigma: float = AssignParams.sigma,
    metric: str = AssignParams.mg_metric,
    alpha: float = AssignParams.tal_alpha,
    beta: float = AssignParams.tal_beta,
    lam: float = AssignParams.mg_lambda,
) -> Assignment:
    """The paper's four rules, in the style of the original SSD matcher: a loop over images and GTs. ``metric``
    and ``lam``: the variants of issue 25 (:func:`mgdet.assign.paper.paper_assign`)."""
    num_b, num_a = gt_boxes.shape[0], anchors.shape[0]
    cls_out = torch.full((num_b, num_a), NEGATIVE, dtype=torch.long)
    reg_out = torch.full((num_b, num_a), NEGATIVE, dtype=torch.long)
    anchors = anchors.float().cpu()

    def reserved(m: Tensor) -> Tensor:
        m = m.clone()
        for j in range(m.shape[0]):
            m[j, m[j].argmax()] = 1.0
        owner = m.max(0).indices
        out = torch.zeros_like(m)
        for j in range(m.shape[0]):
            sel = owner == j
            out[j, sel] = m[j, sel]
        return out

    for b in range(num_b):
        keep = gt_labels[b].cpu() >= 0
        gts, labels = gt_boxes[b].float().cpu()[keep], gt_labels[b].cpu()[keep]
        if len(gts) == 0:
            continue
        iou = box_iou(gts, anchors)
        st = reserved(iou)
        val, owner = st.max(0)
        cls = torch.where(val >= pos, owner, torch.where(val >= neg, IGNORED, NEGATIVE))
        reg = torch.where(cls >= 0, cls, NEGATIVE)
        n_pos = (st >= pos).sum(1)
        n_ign = ((st >= neg) & (st < pos)).sum(1)
        if strategy in ("localize_to_classify", "mutual_guidance"):
            assert pred_boxes is not None
            crit = box_iou(gts, pred_boxes[b].float().cpu())
            if metric == "aligned":
                assert pred_scores is not None
                crit = crit.pow(beta) * pred_scores[b].float().cpu()[:, labels].T.pow(alpha)
            if lam != 1.0:
                crit = iou.pow(1.0 - lam) * crit.pow(lam)
            rr = reserved(crit)
            cls = torch.full((num_a,), NEGATIVE, dtype=torch.long)
            for j in range(len(gts)):
                v, i = rr[j].sort(descending=True, stable=True)
                i = i[v > 0]
                cls[i[n_pos[j] : n_pos[j] + n_ign[j]]] = IGNORED
                cls[i[: n_pos[j]]] = j
        if strategy in ("classify_to_localize", "mutual_guidance"):
            assert pred_scores is not None
            amp = iou ** ((sigma - pred_scores[b].float().cpu()[:, labels].T * lam) / sigma)
            ra = reserved(amp)
            reg = torch.full((num_a,), NEGATIVE, dtype=torch.long)
            for j in range(len(gts)):
                v, i = ra[j].sort(descending=True, stable=True)
                reg[i[v > 0][: n_pos[j]]] = j
        index = keep.nonzero().squeeze(1)  # kept-GT index -> padded index
        cls_out[b] = torch.where(cls >= 0, index[cls.clamp(min=0)], cls)
        reg_out[b] = torch.where(reg >= 0, index[reg.clamp(min=0)], reg)
    return Assignment(cls_out, reg_out)


def reference_atss(
    priors: Priors, gt_boxes: Tensor, gt_labels: Tensor, topk: int = AssignParams.atss_topk, boxes: Tensor | None = None
) -> Assignment:
    """ATSS (:mod:`mgdet.assign.atss`) one image and one GT at a time; ``boxes [A, 4]`` replaces
    ``priors.boxes`` for the IoU (FCOS points: their virtual anchors)."""
    num_b, num_a = gt_boxes.shape[0], priors.num
    boxes = (priors.boxes if boxes is None else boxes).float().cpu()
    centres = priors.centres.float().cpu()
    k_loc = priors.per_location
    out = torch.full((num_b, num_a), NEGATIVE, dtype=torch.long)
    for b in range(num_b):
        best = [-1.0] * num_a
        for g in _valid_gts(gt_labels, b):
            box = gt_boxes[b, g].float().cpu()
            centre = (box[:2] + box[2:]) / 2
            cand: list[int] = []
            start = 0
            for n in priors.level_sizes:
                loc = centres[start : start + n : k_loc]  # [N_l, 2]
                d2 = (loc - centre).square().sum(-1)
                order = d2.sort(stable=True).indices[:topk].tolist()  # ties: lower location index
                cand += [start + i * k_loc + j for i in order for j in range(k_loc)]
                start += n
            ious = box_iou(box[None], boxes[cand])[0].tolist()
            mean = sum(ious) / len(ious)
            std = math.sqrt(sum((v - mean) ** 2 for v in ious) / (len(ious) - 1)) if len(ious) > 1 else 0.0
            box_l = box.tolist()
            for a, v in zip(cand, ious):
                inside = _inside((float(centres[a, 0]), float(centres[a, 1])), box_l)
                if v >= mean + std and inside and v > best[a]:  # strict: the lower GT index keeps a tie
                    best[a], out[b, a] = v, g
    return Assignment(out, out.clone())


def reference_task_aligned(
    centres: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor,
    pred_scores: Tensor,
    topk: int = AssignParams.tal_topk,
    alpha: float = AssignParams.tal_alpha,
    beta: float = AssignParams.tal_beta,
) -> Assignment:
    """Task-aligned assignment (:mod:`mgdet.assign.task_aligned`) one image and one GT at a time; centres
    ``[A, 2]`` of the priors. ``cls_target`` is computed in float64."""
    num_b, num_a = gt_boxes.shape[0], centres.shape[0]
    centres = centres.float().cpu()
    out = torch.full((num_b, num_a), NEGATIVE, dtype=torch.long)
    target = torch.zeros(num_b, num_a, dtype=torch.float64)
    for b in range(num_b):
        gts = _valid_gts(gt_labels, b)
        claims: dict[int, list[int]] = {}
        u: dict[int, list[float]] = {}
        t: dict[int, list[float]] = {}
        for g in gts:
            box = gt_boxes[b, g].float().cpu()
            iou = box_iou(box[None], pred_boxes[b].float().cpu())[0]  # [A]
            score = pred_scores[b, :, int(gt_labels[b, g])].float().cpu()
            metric = score**alpha * iou**beta
            u[g], t[g] = iou.tolist(), metric.tolist()
            d = torch.cat((centres - box[:2], box[2:] - centres), dim=-1)  # [A, 4] (l, t, r, b)
            ok = (metric > 0) & (d.min(-1).values > MARGIN)
            order = (-metric).sort(stable=True).indices  # largest first, ties: lower index
            for a in order[ok[order]][:topk].tolist():
                claims.setdefault(a, []).append(g)
        won: dict[int, list[int]] = {}
        for a, gs in claims.items():
            g_best = gs[0]
            for g in gs[1:]:  # gs ascending: the lower GT index keeps a tie
                if u[g][a] > u[g_best][a]:
                    g_best = g
            out[b, a] = g_best
            won.setdefault(g_best, []).append(a)
        for g, anchors in won.items():
            max_t = max(t[g][a] for a in anchors)
            max_u = max(u[g][a] for a in anchors)
            for a in anchors:
                target[b, a] = t[g][a] / max_t * max_u
    return Assignment(out, out.clone(), cls_target=target)


def reference_assign(
    strategy: str,
    priors: Priors,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor | None = None,
    pred_scores: Tensor | None = None,
) -> Assignment:
    """The reference of ``strategy`` on anchors (default thresholds), for benchmarks."""
    if strategy == "atss":
        return reference_atss(priors, gt_boxes, gt_labels)
    if strategy == "task_aligned":
        assert pred_boxes is not None and pred_scores is not None
        return reference_task_aligned(priors.centres, gt_boxes, gt_labels, pred_boxes, pred_scores)
    if strategy == "mutual_guidance_dynamic":
        assert pred_boxes is not None and pred_scores is not None
        return reference_dynamic(priors, gt_boxes, gt_labels, pred_boxes, pred_scores)
    if strategy in ("iou", "localize_to_classify", "classify_to_localize", "mutual_guidance"):
        return reference_paper(strategy, priors.boxes, gt_boxes, gt_labels, pred_boxes, pred_scores)
    raise ValueError(f"no reference implementation of {strategy!r}")


def reference_dynamic(
    priors: Priors,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    pred_boxes: Tensor,
    pred_scores: Tensor,
    sigma: float = AssignParams.sigma,
    topq: int = AssignParams.mgd_topq,
) -> Assignment:
    """The authors' later rule (:mod:`mgdet.assign.dynamic`) one image and one GT at a time, written from
    ``authors-later-mg.md`` section 2 with mgdet's tie rules (lower GT index, then lower prior index)."""
    num_b, num_a = gt_boxes.shape[0], priors.num
    outs = {task: torch.full((num_b, num_a), NEGATIVE, dtype=torch.long) for task in ("cls", "reg")}
    quality = {task: torch.zeros(num_b, num_a) for task in ("cls", "reg")}
    anchors, centres = priors.boxes.float().cpu(), priors.centres.float().cpu()
    for b in range(num_b):
        gts = [g for g in range(gt_boxes.shape[1]) if int(gt_labels[b, g]) >= 0]
        mats = {task: torch.zeros(gt_boxes.shape[1], num_a) for task in ("cls", "reg")}
        for g in gts:
            box = gt_boxes[b, g].float().cpu()
            iou_reg = box_iou(box[None], pred_boxes[b].float().cpu())[0]  # [A]
            p = pred_scores[b, :, int(gt_labels[b, g])].float().cpu()  # [A]
            if priors.ranges is None:
                base = box_iou(box[None], anchors)[0]
            else:  # points: inside the GT on the right level; centerness for IoU_anchor
                ltrb = torch.cat((centres - box[:2], box[2:] - centres), dim=-1)  # [A, 4]
                ranges = priors.ranges.cpu()
                cand = (ltrb.min(-1).values > 0) & (ltrb.max(-1).values > ranges[:, 0])
                cand &= ltrb.max(-1).values <= ranges[:, 1]
                iou_reg = torch.where(cand, iou_reg, 0.0)
                d = ltrb.clamp(min=0)
                lr, tb = d[:, 0::2], d[:, 1::2]
                ratio = (lr.min(-1).values / lr.max(-1).values.clamp(min=1e-12)) * (
                    tb.min(-1).values / tb.max(-1).values.clamp(min=1e-12)
                )
                base = torch.where(cand, ratio.sqrt(), 0.0)
            mats["cls"][g] = iou_reg
            mats["reg"][g] = (base * torch.exp(p / sigma)).clamp(max=1.0)
        for task, m in mats.items():
            top = m.max(dim=0).values  # [A]
            for a in range(num_a):  # reservation: the lowest GT index among the tied best keeps the prior
                if top[a] > 0:
                    keeper = min(g for g in gts if m[g, a] == top[a])
                    m[:, a] = torch.where(torch.arange(m.shape[0]) == keeper, m[:, a], 0.0)
            for g in gts:
                row = m[g]
                live = int((row > 0).sum())
                best = sorted((float(v) for v in row if v > 0), reverse=True)[:topq]
                k = min(max(1, math.floor(sum(best))), live)
                order = torch.argsort(-row, stable=True)[:k]  # ties: lower prior index
                outs[task][b, order] = g
                quality[task][b, order] = row[order]
    return Assignment(outs["cls"], outs["reg"], cls_target=quality["cls"], reg_weight=quality["reg"])
