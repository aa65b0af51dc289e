"""IoU_anchor on crowded images without the ``[B, G, A]`` matrix: each GT against the anchors near it only.

A small GT overlaps a few hundred of the thousands of anchors; IoU_anchor, its amplification and the reservation
are zero everywhere else. On the anchor grid, the anchors of one level and shape that overlap a GT form a window
of rows x columns (:func:`anchor_blocks`), and the IoU is separable there: the widths of the intersections
depend on the column only, the heights on the row only. So a window costs a handful of broadcast operations per
anchor, written as :func:`mgdet.boxes.box_iou` writes them (identical values, bit for bit). Windows are padded
to the largest of a block of GTs (GTs sorted by window size) and laid out with the GTs on the last dimension,
which keeps every operation vectorised; blocks hold about :data:`BLOCK_BUDGET` entries, so memory stays bounded
however crowded the image.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from mgdet.assign import core
from mgdet.assign.priors import Priors
from mgdet.boxes import box_area

#: False: the paper's rules always use the dense GT chunks (same results; benchmarks compare the two paths).
WINDOWS = True
#: Window entries per block (each holds a few int64 and float32 values: a few tens of MiB of temporaries).
BLOCK_BUDGET = 1 << 20
#: Use the dense path (return None) when the padded windows hold more than this fraction of the ``B x G x A``
#: pairs (measured break-even: a window entry costs about 3-4 times a dense pair; IoU_regressed is gathered).
_MAX_ANCHOR_FRACTION = 0.25
_MAX_PRED_FRACTION = 0.2


def _grid_axes(boxes: Tensor, h: int, w: int, k: int) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """The column coordinates ``x1, x2 [K, W]`` and row coordinates ``y1, y2 [K, H]`` of one level's anchors
    ``boxes [H * W * K, 4]`` (row-major locations, K shapes each), or None when they are not a regular grid
    with increasing coordinates."""
    grid = boxes.view(h, w, k, 4)
    x1, x2 = grid[0, :, :, 0].t().contiguous(), grid[0, :, :, 2].t().contiguous()  # [K, W]
    y1, y2 = grid[:, 0, :, 1].t().contiguous(), grid[:, 0, :, 3].t().contiguous()  # [K, H]
    regular = (
        torch.equal(grid[..., 0], x1.t()[None].expand(h, w, k))
        and torch.equal(grid[..., 2], x2.t()[None].expand(h, w, k))
        and torch.equal(grid[..., 1], y1.t()[:, None].expand(h, w, k))
        and torch.equal(grid[..., 3], y2.t()[:, None].expand(h, w, k))
    )
    increasing = all(bool((t[:, 1:] >= t[:, :-1]).all()) for t in (x1, x2, y1, y2))
    return (x1, x2, y1, y2) if regular and increasing else None


@dataclass
class AnchorBlock:
    """The anchors near some GTs, as padded windows: for each of ``n`` GTs and each anchor shape of one level, the
    rows x columns of the level's grid whose anchors overlap the GT (padding entries have IoU 0)."""

    gt: Tensor  # [n] long: flat GT index (image * G + GT)
    local: Tensor  # [n] long: GT index in its image
    slot: Tensor  # [K, R, C, n] long: image * A + anchor index (a real anchor everywhere, padding included)
    iou: Tensor  # [K, R, C, n] float32: IoU_anchor, bit for bit as box_iou; 0 in the padding


def anchor_blocks(
    boxes: Tensor,
    grid_hw: tuple[tuple[int, int], ...],
    per_location: int,
    gt_boxes: Tensor,
    valid: Tensor,
    preds: Tensor | None = None,
    budget: int | None = None,
    max_fraction: float | None = None,
) -> Iterator[AnchorBlock] | None:
    """IoU_anchor (or, with ``preds``, IoU_regressed) of every valid GT with the anchors that overlap it, level by
    level, in padded windows of the anchor grid: anchors ``boxes [A, 4]`` level by level (feature maps
    ``grid_hw``), ``per_location`` shapes per location, row-major.

    On a grid, the anchors of one level and shape that overlap a GT (``min(x2) > max(x1)`` and the same in y, as
    the IoU computes it) form a window of rows x columns; its bounds come from ``searchsorted`` on the sorted
    anchor coordinates, exact. The IoU is separable there: the widths of the intersections depend on the column,
    the heights on the row, so a window costs a handful of broadcast operations. GTs are sorted by window size
    and cut into blocks of about ``budget`` entries. Returns None (use the dense path) when the anchors are not
    such a grid or the padded windows would cost more than the dense ``B x G x A`` matrix (more than
    ``max_fraction`` of its entries; default: the measured break-even).

    With the regressed boxes ``preds [B, A, 4]`` (one per anchor), the windows are widened by how far the regressed
    boxes of each level and shape moved from their anchors (at most), so they still hold every anchor whose
    regressed box overlaps the GT; the IoU is then that of the regressed box (not separable: gathered per entry).
    """
    budget = BLOCK_BUDGET if budget is None else budget
    b, g = valid.shape
    k = per_location
    gi_img, gi_gt = valid.nonzero(as_tuple=True)  # [V]
    if gi_img.numel() == 0:
        return iter(())
    gt = gt_boxes.reshape(-1, 4).index_select(0, gi_img * g + gi_gt).float()  # [V, 4]
    v = gt.shape[0]
    g_area = box_area(gt)  # [V]
    gx1, gy1, gx2, gy2 = (gt[:, i][None].expand(k, v).contiguous() for i in range(4))  # [K, V]
    plan = []  # (level, GT indices of one block), GTs sorted by window size
    start, total = 0, 0
    for h, w in grid_hw:
        level = boxes[start : start + h * w * k].float()
        axes = _grid_axes(level, h, w, k)
        if axes is None:
            return None
        if preds is not None:  # widen by the largest move of a regressed box of each shape: [K, 1] in x and y
            move = (preds[:, start : start + h * w * k].float() - level).abs().view(-1, k, 4).amax(0)  # [K, 4]
            if not bool(torch.isfinite(move).all()):
                return None
            mx = move[:, 0::2].amax(1, keepdim=True) * (1 + 1e-5) + 1e-2  # rounding slack: only widens
            my = move[:, 1::2].amax(1, keepdim=True) * (1 + 1e-5) + 1e-2
            gx1, gx2, gy1, gy2 = gx1 - mx, gx2 + mx, gy1 - my, gy2 + my
        c_lo = torch.searchsorted(axes[1], gx1, right=True)  # [K, V] first column with x2 > GT x1
        c_hi = torch.searchsorted(axes[0], gx2)  # [K, V] end of the columns with x1 < GT x2
        r_lo = torch.searchsorted(axes[3], gy1, right=True)
        r_hi = torch.searchsorted(axes[2], gy2)
        cols, rows = (c_hi - c_lo).clamp(min=0), (r_hi - r_lo).clamp(min=0)  # [K, V]
        info = (start, h, w, axes, c_lo, r_lo, rows, cols)
        size = rows.amax(0) * cols.amax(0)  # [V] window size of each GT (over the shapes)
        order = size.argsort()
        order = order[size.index_select(0, order) > 0]  # GTs touching this level, small windows first
        for lo, hi in _cuts(size.index_select(0, order).tolist(), k, budget):
            idx = order[lo:hi]
            total += k * len(idx) * int(rows[:, idx].max()) * int(cols[:, idx].max())  # the padded block
            plan.append((info, idx))
        start += h * w * k
        if preds is not None:
            gx1, gy1, gx2, gy2 = (gt[:, i][None].expand(k, v).contiguous() for i in range(4))
    if start != boxes.shape[0]:
        return None
    if max_fraction is None:
        max_fraction = _MAX_PRED_FRACTION if preds is not None else _MAX_ANCHOR_FRACTION
    if total > max_fraction * b * g * boxes.shape[0]:
        return None
    pred_planes = None
    if preds is not None:
        flat = preds.reshape(-1, 4).float()  # [B * A, 4]
        pred_planes = (*(flat[:, i].contiguous() for i in range(4)), box_area(flat))
    return _blocks(plan, k, gt, g_area, gi_img, gi_gt, g, boxes.shape[0], pred_planes)


def _blocks(plan: list, k: int, gt: Tensor, g_area: Tensor, gi_img: Tensor, gi_gt: Tensor, g: int, a: int,
            pred_planes: tuple[Tensor, ...] | None) -> Iterator[AnchorBlock]:  # fmt: skip
    """The blocks of the plan, one at a time (bounded memory)."""
    for (start, h, w, axes, c_lo, r_lo, rows, cols), idx in plan:
        win = (c_lo[:, idx], r_lo[:, idx], cols[:, idx], rows[:, idx])  # [K, n] each
        yield _block(idx, start, h, w, k, axes, win, gt, g_area, gi_img, gi_gt, g, a, pred_planes)


def _cuts(size: list[int], k: int, budget: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` ranges of GTs sorted by window ``size`` holding about ``budget`` padded entries each."""
    out, lo = [], 0
    while lo < len(size):
        n = max(1, budget // (k * size[lo]))  # at the smallest window of the range
        n = max(1, budget // (k * size[min(lo + n, len(size)) - 1]))  # at its largest
        out.append((lo, min(lo + n, len(size))))
        lo += n
    return out


def _block(
    idx: Tensor,
    start: int,
    h: int,
    w: int,
    k: int,
    axes: tuple[Tensor, Tensor, Tensor, Tensor],
    win: tuple[Tensor, Tensor, Tensor, Tensor],
    gt: Tensor,
    g_area: Tensor,
    gi_img: Tensor,
    gi_gt: Tensor,
    g: int,
    a: int,
    pred_planes: tuple[Tensor, ...] | None = None,
) -> AnchorBlock:
    """The padded windows ``win = (first column, first row, columns, rows)``, each ``[n, K]``, of the GTs
    ``idx [n]`` (valid-GT indices) on one level."""
    x1, x2, y1, y2 = axes  # [K, W], [K, H]
    cl, rl, cols, rows = win  # [K, n] each
    n = idx.shape[0]
    nr, nc = max(int(rows.max()), 1), max(int(cols.max()), 1)
    # GTs on the last dimension: every operation below is vectorised over the n GTs of the block
    col = (cl[:, None, :] + torch.arange(nc, device=gt.device)[:, None]).clamp_(max=w - 1)  # [K, C, n]
    row = (rl[:, None, :] + torch.arange(nr, device=gt.device)[:, None]).clamp_(max=h - 1)  # [K, R, n]
    gb = gt.index_select(0, idx).t().contiguous()  # [4, n]
    in_col = torch.arange(nc, device=gt.device)[:, None] < cols[:, None, :]  # [K, C, n] inside the window
    in_row = torch.arange(nr, device=gt.device)[:, None] < rows[:, None, :]  # [K, R, n]
    # image * A + anchor index, from a row part [K, R, 1, n] and a column part [K, 1, C, n]
    img = gi_img.index_select(0, idx)
    shape = torch.arange(k, device=gt.device)[:, None, None]  # [K, 1, 1]
    slot = (row * (w * k) + shape + (start + img * a))[:, :, None, :] + (col * k)[:, None, :, :]
    gt_flat, local = img * g + gi_gt.index_select(0, idx), gi_gt.index_select(0, idx)
    if pred_planes is not None:  # IoU_regressed: the regressed box of each entry's anchor, as box_iou computes it
        px1, py1, px2, py2, p_area = (t.take(slot) for t in pred_planes)  # [K, R, C, n]
        iw = torch.minimum(px2, gb[2]).sub_(torch.maximum(px1, gb[0])).clamp_(min=0)
        ih = torch.minimum(py2, gb[3]).sub_(torch.maximum(py1, gb[1])).clamp_(min=0)
        inter = iw.mul_(ih)
        union = p_area.add_(g_area.index_select(0, idx)).sub_(inter)
        iou = inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny))
        iou.masked_fill_(~(in_row[:, :, None, :] & in_col[:, None, :, :]), 0.0)  # padding
        return AnchorBlock(gt_flat, local, slot, iou)
    # anchor coordinates of the window's columns [K, C, n] and rows [K, R, n]
    ax1, ax2 = x1.gather(1, col.view(k, -1)).view(k, nc, n), x2.gather(1, col.view(k, -1)).view(k, nc, n)
    ay1, ay2 = y1.gather(1, row.view(k, -1)).view(k, nr, n), y2.gather(1, row.view(k, -1)).view(k, nr, n)
    # the same operations as box_iou, on the separable parts: widths per column, heights per row
    iw = torch.minimum(ax2, gb[2]).sub_(torch.maximum(ax1, gb[0])).clamp_(min=0).mul_(in_col)  # [K, C, n]
    ih = torch.minimum(ay2, gb[3]).sub_(torch.maximum(ay1, gb[1])).clamp_(min=0).mul_(in_row)  # [K, R, n]
    inter = ih[:, :, None, :] * iw[:, None, :, :]  # [K, R, C, n]
    a_w = (ax2 - ax1).clamp_(min=0)  # [K, C, n] as box_area
    a_h = (ay2 - ay1).clamp_(min=0)  # [K, R, n]
    union = (a_w[:, None, :, :] * a_h[:, :, None, :]).add_(g_area.index_select(0, idx)).sub_(inter)
    iou = inter.div_(union.clamp_(min=torch.finfo(union.dtype).tiny))
    return AnchorBlock(gt_flat, local, slot, iou)


def windows(
    priors: Priors, gt_boxes: Tensor, valid: Tensor, preds: Tensor | None = None
) -> Iterator[AnchorBlock] | None:
    """The rules' entry point: :func:`anchor_blocks` of ``priors`` when the ``[B, G, A]`` matrix is larger than
    one dense chunk, the priors are an anchor grid and :data:`WINDOWS` is on; None: use the dense chunks
    (identical results)."""
    b, g = valid.shape
    if not WINDOWS or b * g * priors.num <= core.CHUNK_ELEMENTS or priors.grid_hw is None or priors.ranges is not None:
        return None
    return anchor_blocks(priors.boxes, priors.grid_hw, priors.per_location, gt_boxes, valid, preds)


def block_scores(scores: Tensor, blk: AnchorBlock, labels: Tensor) -> Tensor:
    """``[K, R, C, n]``: the score of each GT's class (``labels [B, G]`` >= 0) at each anchor of a window block
    (``scores [B, A, C]``)."""
    return scores.reshape(-1).take(blk.slot * scores.shape[-1] + labels.reshape(-1).index_select(0, blk.gt))
