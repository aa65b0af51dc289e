"""Box overlap in numpy (float64, continuous coordinates, no "+1" pixel convention), for code without torch."""

from __future__ import annotations

import numpy as np


def box_iou_np(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes ``a [..., 4]`` and ``b [..., 4]``, broadcast over the leading axes -> ``[...]``.

    Boxes of zero area have IoU 0 with everything (also with themselves)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    lt = np.maximum(a[..., :2], b[..., :2])  # [..., 2]
    rb = np.minimum(a[..., 2:], b[..., 2:])  # [..., 2]
    wh = (rb - lt).clip(0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]).clip(0) * (a[..., 3] - a[..., 1]).clip(0)
    area_b = (b[..., 2] - b[..., 0]).clip(0) * (b[..., 3] - b[..., 1]).clip(0)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of ``a`` [N, 4] and of ``b`` [M, 4] (xyxy) -> [N, M]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    return box_iou_np(a[:, None, :], b[None, :, :])  # [N, M]
