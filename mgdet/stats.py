"""The per-epoch statistics of ``history.csv``: assignment statistics and the positives' class scores.

Pure tensor / numpy code, the one definition the training loop logs:

* assignment statistics (:data:`STAT_KEYS`): :func:`assignment_stats` gives one training step's ratios,
  :func:`epoch_means` averages per-step values over the epoch's finite steps (a mean of per-step ratios,
  not a ratio of pooled counts);
* the class score of positive anchors, the ``p`` that Classify to Localize amplifies IoU_anchor with: its
  median per epoch (``pos_score_median``) comes from a fixed-bin histogram, whose counts add up exactly over
  steps and resumes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from mgdet.assign import IGNORED, Assignment

#: Keys of :func:`assignment_stats`, also columns of ``history.csv``.
STAT_KEYS: tuple[str, ...] = ("pos_cls_per_gt", "pos_reg_per_gt", "ign_per_gt", "disagree")

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


@torch.no_grad()
def assignment_stats(assignment: Assignment, gt_labels: Tensor) -> dict[str, float]:
    """One training step's assignment statistics (the :data:`STAT_KEYS` columns of ``history.csv``).

    Args:
        assignment: ``cls_gt`` / ``reg_gt`` ``[B, A]`` of the step (:func:`mgdet.assign.assign` or the FCOS variant).
        gt_labels: ``[B, G]`` with ``-1`` for padding; the valid entries are the step's GTs.

    Returns:
        ``pos_cls_per_gt`` (classification positives ``cls_gt >= 0``), ``pos_reg_per_gt`` (regression samples
        ``reg_gt >= 0``) and ``ign_per_gt`` (ignored anchors ``cls_gt == IGNORED``), each divided by
        ``max(1, number of valid GTs of the step)``, and ``disagree``: the fraction of the step's ``B * A``
        anchors whose classification-positive and regression-positive status differ. Python floats.
    """
    num_gt = max(int((gt_labels >= 0).sum()), 1)
    return {
        "pos_cls_per_gt": int(assignment.cls_pos.sum()) / num_gt,
        "pos_reg_per_gt": int(assignment.reg_pos.sum()) / num_gt,
        "ign_per_gt": int((assignment.cls_gt == IGNORED).sum()) / num_gt,
        "disagree": float(assignment.disagreement()),
    }


def epoch_means(sums: Mapping[str, float], steps: int) -> dict[str, float]:
    """An epoch's ``history.csv`` values: ``sums`` of per-step values (:func:`assignment_stats`, losses) over
    the epoch's ``steps`` finite steps, divided by ``max(1, steps)``."""
    n = max(steps, 1)
    return {k: v / n for k, v in sums.items()}
