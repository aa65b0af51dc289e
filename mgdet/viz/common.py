"""Shared plotting helpers: the Agg backend, colour palettes, image conversion and PNG saving."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are only ever written to files

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

#: Okabe & Ito (2008) colour-blind-safe palette (black first dropped: it vanishes on dark images).
OKABE_ITO: tuple[str, ...] = (
    "#E69F00",  # orange
    "#56B4E9",  # sky blue
    "#009E73",  # bluish green
    "#F0E442",  # yellow
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#999999",  # grey
)

#: The paper's assignment colours, taken from Okabe-Ito so that they stay distinguishable.
RED = "#D55E00"  # positive for static IoU matching only
GREEN = "#009E73"  # positive for Localize to Classify only
YELLOW = "#F0E442"  # positive for Classify to Localize only
GT_COLOUR = "#FFFFFF"  # ground truth: white dotted


def class_colour(label: int) -> str:
    """A stable palette colour for class ``label`` (cycles through :data:`OKABE_ITO`)."""
    return OKABE_ITO[int(label) % len(OKABE_ITO)]


def to_hwc_uint8(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """Image as ``[H, W, 3]`` uint8 for ``imshow``.

    Accepts ``[3, H, W]`` float tensors in [0, 1] (network input) or ``[H, W, 3]`` uint8 / float arrays.
    """
    if isinstance(image, torch.Tensor):
        image = image.detach().cpu()
        if image.ndim == 3 and image.shape[0] in (1, 3) and image.shape[-1] not in (1, 3):
            image = image.permute(1, 2, 0)  # [H, W, C]
        image = image.numpy()
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    return arr


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` as an image (format from the suffix), creating parent folders; closes the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")  # "tight": keep outside legends
    fig.clear()
    return path
