"""Fig. 5 of the paper: the same image through two detectors (e.g. static IoU vs Mutual Guidance), after
NMS at IoU 0.5, side by side with the ground truth."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from torch import Tensor

from mgdet.postprocess import PAPER_POSTPROCESS
from mgdet.viz.common import class_colour, to_hwc_uint8

#: The paper's Fig. 5 uses its inference NMS, at IoU 0.5.
PAPER_NMS_IOU = PAPER_POSTPROCESS.nms_iou


@torch.no_grad()
def run_detector(
    detector: torch.nn.Module, image: Tensor, score_thresh: float = 0.3, nms_iou: float = PAPER_NMS_IOU
) -> dict[str, Tensor]:
    """Detections of one image ``[3, S, S]`` in [0, 1]: ``dict(boxes [N, 4] S-pixels, scores [N], labels [N])``
    after class-aware NMS at ``nms_iou``, scores >= ``score_thresh``, on CPU."""
    detector.eval()
    device = next(detector.parameters()).device
    outputs = detector(image[None].to(device).float())
    det = detector.predict(outputs, score_thresh=score_thresh, nms_iou=nms_iou)[0]
    return {k: v.detach().cpu() for k, v in det.items()}


def _label(names: Sequence[str] | None, label: int) -> str:
    return names[label] if names is not None and 0 <= label < len(names) else str(label)


def draw_boxes(
    ax: Any,
    boxes: Tensor | np.ndarray,
    labels: Tensor | np.ndarray,
    scores: Tensor | np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    dotted: bool = False,
) -> None:
    """Draw ``boxes [N, 4]`` xyxy on ``ax`` coloured by class, labelled "name" or "name 0.87"."""
    boxes = np.asarray(torch.as_tensor(boxes).detach().cpu().float()).reshape(-1, 4)
    labels = np.asarray(torch.as_tensor(labels).detach().cpu()).reshape(-1).astype(int)
    sc = None if scores is None else np.asarray(torch.as_tensor(scores).detach().cpu().float()).reshape(-1)
    for i, ((x1, y1, x2, y2), lab) in enumerate(zip(boxes.tolist(), labels.tolist())):  # drawing only
        colour = class_colour(lab)
        rect = Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, lw=2, ls=":" if dotted else "-")
        rect.set_gid("gt" if dotted else "det")
        ax.add_patch(rect)
        text = _label(class_names, lab) + ("" if sc is None else f" {sc[i]:.2f}")
        top = y1 < 10  # a label above a box at the top edge would be cut off: put it inside the box
        ax.text(
            x1, y1, text, fontsize=7, color="black", va="top" if top else "bottom", ha="left", clip_on=True,
            bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.0, "alpha": 0.85},
        )  # fmt: skip


def plot_detections(
    image: np.ndarray | Tensor,
    gt: Mapping[str, Any],
    detections: Sequence[Mapping[str, Any]],
    titles: Sequence[str],
    class_names: Sequence[str] | None = None,
) -> Figure:
    """Ground truth and each detector's output on one image, side by side; returns the Figure.

    Args:
        image: ``[H, W, 3]`` uint8 or ``[3, H, W]`` float in [0, 1]; boxes are in this image's pixels.
        gt: ``dict(boxes [G, 4], labels [G])``.
        detections: one ``dict(boxes [N, 4], scores [N], labels [N])`` per detector.
        titles: one title per detector (e.g. ``("static IoU", "Mutual Guidance")``).

    ``fig.axes[0]`` is the ground truth (dotted boxes), ``fig.axes[1 + i]`` detector ``i``.
    """
    if len(titles) != len(detections):
        raise ValueError(f"{len(detections)} detection sets but {len(titles)} titles")
    img = to_hwc_uint8(image)
    h, w = img.shape[:2]
    n = 1 + len(detections)
    fig = Figure(figsize=(3.6 * n * w / max(h, 1), 3.9), layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax in axes:
        ax.imshow(img, extent=(0, w, h, 0))
        ax.set_xlim(0, w)
        ax.set_ylim(h, 0)
        ax.set_axis_off()
    draw_boxes(axes[0], gt["boxes"], gt["labels"], None, class_names, dotted=True)
    axes[0].set_title(f"ground truth ({len(gt['labels'])})", fontsize=10)
    for ax, det, title in zip(axes[1:], detections, titles):
        draw_boxes(ax, det["boxes"], det["labels"], det["scores"], class_names)
        ax.set_title(f"{title} ({len(det['labels'])})", fontsize=10)
    return fig
