"""Training curves from a run's ``history.csv`` and per-class precision-recall curves from an evaluation.

``history.csv`` has one row per epoch: epoch, iter, lr, loss, loss_cls, loss_reg, pos_cls_per_gt,
pos_reg_per_gt, ign_per_gt, disagree, epoch_time_s and, on evaluated epochs, AP, AP50, AP75, APs, APm, APl,
misalign (empty cells elsewhere). Missing columns or empty cells become NaN and are simply not drawn.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from mgdet.viz.common import OKABE_ITO

#: (panel title, y label, columns) of :func:`plot_training_curves`, in drawing order.
CURVE_PANELS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("losses", "loss", ("loss", "loss_cls", "loss_reg")),
    ("learning rate", "lr", ("lr",)),
    ("validation AP", "AP", ("AP", "AP50", "AP75")),
    ("assignment: samples per GT", "anchors / GT", ("pos_cls_per_gt", "pos_reg_per_gt", "ign_per_gt")),
    ("cls / reg disagreement", "fraction of anchors", ("disagree",)),
    ("misalignment rate", "fraction of kept detections", ("misalign",)),
)


def read_history(path: str | Path) -> dict[str, np.ndarray]:
    """``history.csv`` -> ``{column: float array [E]}``; empty or non-numeric cells are NaN."""
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns = list(rows[0].keys()) if rows else []

    def num(text: str | None) -> float:
        try:
            return float(text) if text not in (None, "") else math.nan
        except ValueError:
            return math.nan

    return {c: np.array([num(r.get(c)) for r in rows], dtype=np.float64) for c in columns}


def plot_training_curves(history: Mapping[str, np.ndarray], title: str | None = None) -> Figure:
    """Losses, lr, AP / AP50 / AP75, positives and ignored per GT, disagreement and misalignment vs epoch.

    ``history`` as returned by :func:`read_history` (needs ``epoch``; any other column may be missing).
    Sparse columns (AP, misalign: only evaluated epochs) are drawn with markers.
    """
    epoch = np.asarray(history.get("epoch", np.arange(1, 1 + max((len(v) for v in history.values()), default=0))))
    fig = Figure(figsize=(13.0, 7.0), layout="constrained")
    axes = fig.subplots(2, 3).reshape(-1)
    for ax, (name, ylabel, columns) in zip(axes, CURVE_PANELS):
        drawn = 0
        for i, col in enumerate(columns):
            y = np.asarray(history.get(col, np.full(len(epoch), np.nan)), dtype=np.float64)
            ok = np.isfinite(y)
            if not ok.any():
                continue
            sparse = ok.sum() < len(y)
            ax.plot(epoch[ok], y[ok], color=OKABE_ITO[i], lw=1.8, marker="o" if sparse else None, ms=4, label=col)
            drawn += 1
        if drawn == 0:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        elif len(columns) > 1:
            ax.legend(fontsize=8)
        if name == "learning rate" and drawn and np.nanmin(history["lr"]) > 0:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def plot_pr_curves(
    precision: np.ndarray,
    class_names: Sequence[str],
    recall_thresholds: np.ndarray | None = None,
    iou_thresholds: np.ndarray | None = None,
    ious: Sequence[float] = (0.5, 0.75),
    max_legend: int = 20,
) -> Figure:
    """Per-class precision-recall curves at each IoU of ``ious``; one panel per IoU.

    Args:
        precision: ``[T, R, K]`` as ``EvalResult.precision`` (-1 where a class has no GT).
        recall_thresholds: ``[R]`` (default 101 points 0..1); iou_thresholds ``[T]`` (default .50:.05:.95).
        max_legend: legend only when there are at most this many classes.

    The dashed black line is the mean over classes with ground truth.
    """
    precision = np.asarray(precision, dtype=np.float64)
    t_count, r_count, k_count = precision.shape
    rec = np.linspace(0.0, 1.0, r_count) if recall_thresholds is None else np.asarray(recall_thresholds)
    thr = np.linspace(0.5, 0.95, t_count) if iou_thresholds is None else np.asarray(iou_thresholds)
    fig = Figure(figsize=(5.2 * len(ious) + 2.2, 4.4), layout="constrained")
    axes = fig.subplots(1, len(ious), squeeze=False)[0]
    colours = OKABE_ITO if k_count <= len(OKABE_ITO) else None
    for ax, iou in zip(axes, ious):
        hits = np.flatnonzero(np.isclose(thr, iou))
        if hits.size == 0:
            raise ValueError(f"IoU {iou} is not one of the evaluated thresholds {thr.tolist()}")
        p = precision[hits[0]]  # [R, K]
        has_gt = (p > -1).any(0)  # [K]
        p = np.where(p > -1, p, np.nan)
        for k in np.flatnonzero(has_gt).tolist():  # one line per class (drawing only)
            colour = colours[k] if colours is not None else None
            name = class_names[k] if k < len(class_names) else str(k)
            ax.plot(rec, p[:, k], lw=1.2, color=colour, label=name)
        if has_gt.any():
            ax.plot(rec, np.nanmean(p[:, has_gt], axis=1), color="black", lw=2, ls="--", label="mean")
        ax.set_title(f"precision-recall at IoU {iou:g}", fontsize=10)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    if k_count <= max_legend:
        axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def plot_per_class_ap(per_class: Sequence[Mapping[str, Any]], keys: Sequence[str] = ("AP50", "AP75")) -> Figure:
    """Horizontal bars of per-class AP (``EvalResult.per_class`` or the ``per_class`` list of its json)."""
    names = [str(c["name"]) for c in per_class]
    fig = Figure(figsize=(7.0, 1.2 + 0.28 * max(len(names), 1)), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(names))
    height = 0.8 / max(len(keys), 1)
    for i, key in enumerate(keys):
        vals = np.array([np.nan if c.get(key) is None else float(c[key]) for c in per_class], dtype=np.float64)
        ax.barh(y + (i - (len(keys) - 1) / 2) * height, np.nan_to_num(vals), height, color=OKABE_ITO[i], label=key)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("AP")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig
