"""Non-maximum suppression in plain torch, exact and matrix-based.

Greedy NMS keeps a box iff no *kept* higher-scored box overlaps it with IoU > threshold. With the boxes
sorted by score, let ``S[j, i] = IoU(j, i) > t`` for ``j < i``. The keep mask is the unique fixed point of
``keep[i] = not any_j (keep[j] and S[j, i])``; iterating that map from "keep everything" reaches it (the
first ``n`` entries are final after ``n`` rounds, usually far fewer rounds are needed). Each round is one
``[N, N]`` boolean reduction, so there is no Python loop over boxes (cf. Cluster-NMS, Zheng et al. 2020).
"""

from __future__ import annotations

import torch
from torch import Tensor

from mgdet.boxes import box_iou


def _nms_sorted(suppress: Tensor) -> Tensor:
    """Keep mask [N] for boxes sorted by score given ``suppress [N, N]`` (strictly upper triangular)."""
    keep = torch.ones(suppress.shape[0], dtype=torch.bool, device=suppress.device)
    for _ in range(suppress.shape[0] + 1):
        new = ~(suppress & keep[:, None]).any(dim=0)
        if torch.equal(new, keep):
            break
        keep = new
    return keep


def _nms(boxes: Tensor, scores: Tensor, labels: Tensor | None, iou_threshold: float) -> Tensor:
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


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Greedy NMS: boxes ``[N, 4]`` xyxy, scores ``[N]`` -> kept indices ``[K]`` long, score-descending.
    A box is suppressed by a kept higher-scored box with IoU strictly greater than ``iou_threshold``."""
    return _nms(boxes, scores, None, iou_threshold)


def batched_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """Class-aware NMS: boxes of different ``labels [N]`` never suppress each other (the IoU matrix is
    masked by label equality, exact for any coordinates). Returns kept indices ``[K]``, score-descending."""
    return _nms(boxes, scores, labels, iou_threshold)
