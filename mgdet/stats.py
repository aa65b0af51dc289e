"""The class score of positive anchors: the ``p`` that Classify to Localize amplifies IoU_anchor with.

Pure tensor / numpy code. The training loop logs the median per epoch (``history.csv``:
``pos_score_median``) from a fixed-bin histogram, whose counts add up exactly over steps and resumes.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

#: Bins of the per-epoch histogram of the positives' class scores (``history.csv``: ``pos_score_median``).
SCORE_BINS = 1000


@torch.no_grad()
def positive_class_scores(cls_gt: Tensor, gt_labels: Tensor, scores: Tensor) -> Tensor:
    """``[P]`` sigmoid score of its GT's class at every classification positive (the ``p`` of IoU_amplified).

    Args:
        cls_gt: ``[B, A]`` GT index per anchor (>= 0 positive); gt_labels: ``[B, G]`` (-1 padding);
        scores: ``[B, A, C]`` sigmoid class scores.
    """
    pos = cls_gt >= 0  # [B, A]
    if gt_labels.shape[1] == 0 or not bool(pos.any()):
        return scores.new_zeros(0)
    labels = gt_labels.gather(1, cls_gt.clamp(min=0))  # [B, A]
    return scores[pos].gather(1, labels[pos].clamp(min=0)[:, None]).squeeze(1)  # [P]


def score_histogram(values: Tensor, bins: int = SCORE_BINS) -> list[int]:
    """Counts of ``values`` (in [0, 1]) in ``bins`` equal bins; sums of these are exact over an epoch."""
    idx = (values.detach().float().clamp(0, 1) * bins).long().clamp(max=bins - 1)
    return torch.bincount(idx.cpu(), minlength=bins).tolist()


def histogram_median(counts: list[int] | list[float]) -> float | None:
    """Median of the values behind a :func:`score_histogram` (linear inside the bin; None when empty).

    Exact to within one bin width (1 / len(counts)).
    """
    c = np.asarray(counts, dtype=np.float64)
    total = float(c.sum())
    if total <= 0:
        return None
    cum = np.cumsum(c)
    i = int(np.searchsorted(cum, total / 2))  # first bin where the running count reaches half
    below = cum[i] - c[i]
    return float((i + (total / 2 - below) / c[i]) / len(c))


def histogram_mean(counts: list[int] | list[float]) -> float | None:
    """Mean of the values behind a :func:`score_histogram` (bin centres; None when empty)."""
    c = np.asarray(counts, dtype=np.float64)
    total = float(c.sum())
    if total <= 0:
        return None
    return float(((np.arange(len(c)) + 0.5) / len(c) * c).sum() / total)
