"""Non-maximum suppression in plain torch, exact, without a Python loop over boxes.

Greedy NMS keeps a box iff no *kept* higher-scored box overlaps it with IoU > threshold. With the boxes
sorted by score, let ``S[j, i] = IoU(j, i) > t`` for ``j < i``. The keep mask is the unique fixed point of
``keep[i] = not any_j (keep[j] and S[j, i])``; iterating that map from "keep everything" reaches it (the
first ``n`` entries are final after ``n`` rounds, usually far fewer rounds are needed; cf. Cluster-NMS, Zheng
et al. 2020).

Class-aware NMS only compares boxes of the same class, so ``S`` is block-diagonal once the boxes are grouped by
class. :func:`batched_nms` enumerates the pairs of each class block (``sum_c n_c (n_c - 1) / 2`` instead of
``N^2``), keeps the overlapping ones as edges ``j -> i`` and runs the fixed point on those edges only: one
``bincount`` over the edges per round. :func:`nms_dense` is the ``[N, N]`` matrix form, kept as the reference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdet.boxes import box_iou, elementwise_iou

#: above this many candidate pairs, pairs are enumerated and tested in chunks (bounded memory)
PAIR_CHUNK = 1 << 22


def _nms_sorted(suppress: Tensor) -> Tensor:
    """Keep mask [N] for boxes sorted by score given ``suppress [N, N]`` (strictly upper triangular)."""
    keep = torch.ones(suppress.shape[0], dtype=torch.bool, device=suppress.device)
    for _ in range(suppress.shape[0] + 1):
        new = ~(suppress & keep[:, None]).any(dim=0)
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def nms_dense(boxes: Tensor, scores: Tensor, labels: Tensor | None, iou_threshold: float) -> Tensor:
    """The ``[N, N]`` matrix form of :func:`batched_nms` (the reference the tests and the benchmark compare with)."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices  # [N]
    b = boxes[order].float()
    over = box_iou(b, b) > iou_threshold  # [N, N]
    if labels is not None:
        lab = labels[order]
        over &= lab[:, None] == lab[None, :]
    keep = _nms_sorted(torch.triu(over, diagonal=1))
    return order[keep]


def _block_pairs(counts: Tensor, start: int, stop: int) -> tuple[Tensor, Tensor]:
    """Pairs ``(j, i)``, ``j < i``, of positions in the same block, for the blocks of sizes ``counts`` laid end
    to end; only the pairs numbered ``start <= k < stop`` in (j, i) order (chunking)."""
    dev = counts.device
    n = int(counts.sum())
    block_start = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)  # [N] first position of block
    pos = torch.arange(n, device=dev)
    partners = block_start + torch.repeat_interleave(counts, counts) - pos - 1  # [N] later boxes of the same block
    first = torch.cumsum(partners, 0) - partners  # [N] number of the first pair of each j
    k = torch.arange(start, stop, device=dev)  # [P]
    j = torch.searchsorted(first + partners, k, right=True)  # [P] the j whose pair range holds k
    i = j + 1 + (k - first[j])
    return j, i


def _nms_grouped(boxes: Tensor, counts: Tensor, iou_threshold: float) -> Tensor:
    """Keep mask [N] for ``boxes`` grouped in blocks of ``counts`` (a class each), score-descending inside a
    block: the fixed point of greedy NMS over the overlapping pairs of each block."""
    n = boxes.shape[0]
    partners = counts * (counts - 1) // 2
    total = int(partners.sum())
    src, dst = [], []
    for start in range(0, total, PAIR_CHUNK):
        j, i = _block_pairs(counts, start, min(start + PAIR_CHUNK, total))
        hit = elementwise_iou(boxes[j], boxes[i]) > iou_threshold  # [P]
        src.append(j[hit])
        dst.append(i[hit])
    keep = torch.ones(n, dtype=torch.bool, device=boxes.device)
    if not src:
        return keep
    j, i = torch.cat(src), torch.cat(dst)  # [E] edges: j (higher score) suppresses i if j is kept
    for _ in range(n + 1):
        new = torch.bincount(i[keep[j]], minlength=n) == 0
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def _nms(boxes: Tensor, scores: Tensor, labels: Tensor | None, iou_threshold: float) -> Tensor:
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices  # [N] score-descending
    if labels is None:
        grouped, counts = order, torch.tensor([order.numel()], device=boxes.device)
    else:
        lab = labels[order]
        by_class = torch.sort(lab, stable=True).indices  # [N] grouped by class, score-descending inside
        grouped = order[by_class]
        counts = torch.unique_consecutive(lab[by_class], return_counts=True)[1]
    keep = _nms_grouped(boxes[grouped].float(), counts, iou_threshold)  # [N] in grouped order
    kept = torch.zeros_like(keep)
    kept[grouped] = keep  # back to the boxes' own indices
    return order[kept[order]]


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: boxes ``[N, 4]`` xyxy, scores ``[N]`` -> kept indices ``[K]`` long, score-descending.
    A box is suppressed by a kept higher-scored box with IoU strictly greater than ``iou_threshold``."""
    return _nms(boxes, scores, None, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """Class-aware NMS: boxes of different ``labels [N]`` never suppress each other (only pairs of the same
    class are compared: exact for any coordinates). Returns kept indices ``[K]``, score-descending."""
    return _nms(boxes, scores, labels, iou_threshold)
