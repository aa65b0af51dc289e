"""Fig. 3 of the paper: IoU_amplified = IoU_anchor ** ((sigma - p) / sigma) against IoU_anchor."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from matplotlib import colormaps
from matplotlib.figure import Figure

from mgdet.assign import amplified_iou
from mgdet.viz.common import save_figure

#: Classification scores p drawn as one curve each (the paper's Fig. 3).
PAPER_SCORES: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
#: One panel per sigma. sigma = 1 is shown for illustration only; training requires sigma > 1.
PAPER_SIGMAS: tuple[float, ...] = (1.0, 2.0, 3.0)


def plot_amplification(
    sigmas: Sequence[float] = PAPER_SIGMAS, scores: Sequence[float] = PAPER_SCORES, num_points: int = 201
) -> Figure:
    """One panel per ``sigma``, one curve per classification score ``p``; returns the Figure.

    The curves come from :func:`mgdet.assign.amplified_iou`, the function used for training, so the
    figure shows exactly what Classify to Localize ranks anchors by.
    """
    iou = torch.linspace(0.0, 1.0, num_points)  # [N]
    fig = Figure(figsize=(4.0 * len(sigmas), 3.8), layout="constrained")
    axes = fig.subplots(1, len(sigmas), squeeze=False)[0]
    cmap = colormaps["viridis"]  # sequential and colour-blind safe: darker = lower score
    for ax, sigma in zip(axes, sigmas):
        for p in scores:
            amp = amplified_iou(iou, torch.full_like(iou, float(p)), float(sigma))  # [N]
            label = f"p = {p:g}" + (" (= IoU_anchor)" if p == 0 else "")
            ax.plot(iou.numpy(), amp.numpy(), color=cmap(0.9 * float(p)), lw=2, label=label)
        ax.set_title(f"σ = {sigma:g}" + (" (illustration only)" if sigma <= 1 else ""))
        ax.set_xlabel("IoU_anchor")
        ax.set_ylabel("IoU_amplified")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].legend(title="Classif score", loc="lower right", fontsize=8)
    fig.suptitle("IoU_amplified = IoU_anchor ^ ((σ − p) / σ)")
    return fig


def save_amplification(path: str | Path, **kwargs: object) -> Path:
    """Render :func:`plot_amplification` (keyword arguments passed on) to ``path``."""
    return save_figure(plot_amplification(**kwargs), path)  # type: ignore[arg-type]
