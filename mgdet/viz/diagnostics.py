"""Assignment diagnostics logged by the training loop: positives / ignored per GT and cls-reg disagreement.

Pure tensor code, no plotting. ``assignment_stats`` gives the numbers of one batch; ``AssignmentMeter``
sums the underlying counts over an epoch so that the per-epoch values are exact ratios (not a mean of
per-batch ratios).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mgdet.assign import IGNORED, Assignment

#: Keys of :func:`assignment_stats`, also columns of ``history.csv``.
STAT_KEYS: tuple[str, ...] = ("pos_cls_per_gt", "pos_reg_per_gt", "ign_per_gt", "disagree")


def assignment_counts(assignment: Assignment, gt_labels: Tensor) -> dict[str, int]:
    """Raw counts of a batch: ``num_gt`` (valid GT, label >= 0), ``num_anchors`` (B * A), ``pos_cls``,
    ``pos_reg``, ``ign`` (cls_gt == IGNORED) and ``disagree`` (anchors positive for one task only)."""
    cls_pos = assignment.cls_gt >= 0  # [B, A]
    reg_pos = assignment.reg_gt >= 0  # [B, A]
    return {
        "num_gt": int((gt_labels >= 0).sum()),
        "num_anchors": int(assignment.cls_gt.numel()),
        "pos_cls": int(cls_pos.sum()),
        "pos_reg": int(reg_pos.sum()),
        "ign": int((assignment.cls_gt == IGNORED).sum()),
        "disagree": int((cls_pos != reg_pos).sum()),
    }


def stats_from_counts(counts: dict[str, int]) -> dict[str, float]:
    """Turn :func:`assignment_counts` (or their sum) into the :data:`STAT_KEYS` ratios.

    Per-GT values are 0.0 when there is no GT; ``disagree`` is 0.0 when there is no anchor.
    """
    num_gt, num_anchors = counts["num_gt"], counts["num_anchors"]
    per_gt = (lambda n: n / num_gt) if num_gt > 0 else (lambda n: 0.0)
    return {
        "pos_cls_per_gt": float(per_gt(counts["pos_cls"])),
        "pos_reg_per_gt": float(per_gt(counts["pos_reg"])),
        "ign_per_gt": float(per_gt(counts["ign"])),
        "disagree": counts["disagree"] / num_anchors if num_anchors > 0 else 0.0,
    }


@torch.no_grad()
def assignment_stats(assignment: Assignment, gt_labels: Tensor) -> dict[str, float]:
    """Diagnostics of one batch's assignment.

    Args:
        assignment: ``cls_gt`` / ``reg_gt`` ``[B, A]`` from :func:`mgdet.assign.assign` (or the FCOS variant).
        gt_labels: ``[B, G]`` with ``-1`` for padding; the valid entries are the GTs counted.

    Returns:
        ``pos_cls_per_gt`` (classification positives / GT), ``pos_reg_per_gt`` (regression samples / GT),
        ``ign_per_gt`` (ignored anchors / GT) and ``disagree`` (fraction of all B * A anchors whose
        classification-positive and regression-positive status differ). Python floats.
    """
    return stats_from_counts(assignment_counts(assignment, gt_labels))


@dataclass
class AssignmentMeter:
    """Accumulates :func:`assignment_counts` over batches; ``compute()`` gives the epoch's stats."""

    num_gt: int = 0
    num_anchors: int = 0
    pos_cls: int = 0
    pos_reg: int = 0
    ign: int = 0
    disagree: int = 0

    def update(self, assignment: Assignment, gt_labels: Tensor) -> None:
        """Add one batch."""
        for key, value in assignment_counts(assignment, gt_labels).items():
            setattr(self, key, getattr(self, key) + value)

    def compute(self) -> dict[str, float]:
        """Exact epoch ratios (see :func:`assignment_stats`)."""
        return stats_from_counts(self.__dict__)

    def reset(self) -> None:
        """Start a new epoch."""
        for key in self.__dict__:
            setattr(self, key, 0)
