"""The task misalignment of the paper's Section 3.3, as a picture: detections that NMS kept although they are
poorly localized (IoU < 0.5 with every object of their class), while a lower-scored candidate of the same class
was well localized (IoU >= 0.75) before NMS. One row per image, one column per detector."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from mgdet.viz.common import to_hwc_uint8
from mgdet.viz.detections import _label

KEPT_COLOUR = "#D55E00"  # the misaligned detection NMS kept
BETTER_COLOUR = "#009E73"  # the best-localized lower-scored candidate of the same class, before NMS


def plot_misalignment(
    images: Sequence[np.ndarray],
    gts: Sequence[Mapping[str, Any]],
    examples: Sequence[Sequence[Sequence[Mapping[str, Any]]]],
    titles: Sequence[str],
    class_names: Sequence[str] | None = None,
    per_panel: int = 3,
) -> Figure:
    """``examples[i][j]``: the misaligned detections (dicts of :func:`mgdet.evaluation.misaligned_detections`)
    of detector ``j`` on image ``i``; boxes in the pixels of ``images[i]`` (``[H, W, 3]`` uint8).
    ``gts[i]``: ``dict(boxes [G, 4], labels [G])`` drawn white dotted. ``titles[j]`` heads column ``j``.
    Each panel draws its first ``per_panel`` examples (pass them highest-scored first)."""
    rows, cols = len(images), len(titles)
    fig = Figure(figsize=(3.4 * cols, 3.4 * rows + 0.5))
    axes = np.asarray(fig.subplots(max(rows, 1), cols, squeeze=False))
    for i in range(rows):
        img = to_hwc_uint8(images[i])
        for j in range(cols):
            ax = axes[i, j]
            ax.imshow(img)
            ax.set_xticks([])
            ax.set_yticks([])
            for x1, y1, x2, y2 in np.asarray(gts[i]["boxes"], float).reshape(-1, 4).tolist():
                ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="white", lw=1.2, ls=":"))
            found = examples[i][j]
            for e in found[:per_panel]:
                _box(ax, e["better_box"], BETTER_COLOUR, "--", f"{e['better_score']:.2f}", below=True)
                _box(ax, e["box"], KEPT_COLOUR, "-", f"{_label(class_names, e['label'])} {e['score']:.2f}")
            if i == 0:
                ax.set_title(titles[j], fontsize=10)
            shown = f" ({per_panel} highest-scored drawn)" if len(found) > per_panel else ""
            ax.set_xlabel(f"{len(found)} misaligned{shown}", fontsize=8)
    handles = [Line2D([], [], color=KEPT_COLOUR, lw=2, label="kept by NMS, IoU < 0.5 with the object"),
               Line2D([], [], color=BETTER_COLOUR, lw=2, ls="--",
                      label="lower-scored candidate before NMS, IoU >= 0.75"),
               Line2D([], [], color="grey", lw=1.2, ls=":", label="ground truth")]  # fmt: skip
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.subplots_adjust(left=0.02, right=0.98, top=0.94, bottom=0.08, wspace=0.04, hspace=0.12)
    return fig


def _box(ax: Any, box: Sequence[float], colour: str, ls: str, text: str, below: bool = False) -> None:
    x1, y1, x2, y2 = (float(v) for v in box)
    ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=colour, lw=2, ls=ls))
    ax.text(x1, y2 if below else y1, text, fontsize=7, color="white", va="top" if below else "bottom", clip_on=True,
            bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.0, "alpha": 0.85})  # fmt: skip
