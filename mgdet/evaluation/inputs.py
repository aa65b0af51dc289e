"""Input normalisation of the evaluation: plain per-image dicts (numpy, torch or lists) -> numpy arrays.

``gts``: ``dict(image_id, boxes [N, 4] xyxy, labels [N] 0-based, ignore [N] bool (optional), height, width
(or size))``; ``dets``: ``dict(image_id, boxes [M, 4] xyxy, scores [M], labels [M])``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def _np(x: Any, dtype: Any) -> np.ndarray:
    """Convert a numpy array, torch tensor or (nested) list to a numpy array of ``dtype``."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _boxes(x: Any) -> np.ndarray:
    return _np(x if x is not None else np.zeros((0, 4)), np.float64).reshape(-1, 4)  # [N, 4]


def read_gts(gts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Normalise GT dicts to numpy arrays; check image ids are unique."""
    out = []
    for g in gts:
        boxes = _boxes(g.get("boxes"))
        n = len(boxes)
        labels = _np(g.get("labels", np.zeros(0)), np.int64).reshape(-1)
        ignore = g.get("ignore")
        ignore = np.zeros(n, bool) if ignore is None else _np(ignore, bool).reshape(-1)
        if len(labels) != n or len(ignore) != n:
            raise ValueError(f"image {g['image_id']}: boxes, labels and ignore lengths differ")
        size = g.get("size", (0, 0))
        out.append(
            dict(
                image_id=int(g["image_id"]),
                boxes=boxes,
                labels=labels,
                ignore=ignore,
                height=int(g.get("height", size[0])),
                width=int(g.get("width", size[1])),
            )
        )
    ids = [g["image_id"] for g in out]
    if len(set(ids)) != len(ids):
        raise ValueError("gts contain duplicate image ids")
    return out


def read_dets(dets: Sequence[Mapping[str, Any]], known_ids: set[int] | None) -> list[dict[str, Any]]:
    """Normalise detection dicts to numpy arrays; check every image id exists in the GT (if given)."""
    out = []
    for d in dets:
        boxes = _boxes(d.get("boxes"))
        scores = _np(d.get("scores", np.zeros(0)), np.float64).reshape(-1)
        labels = _np(d.get("labels", np.zeros(0)), np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(labels):
            raise ValueError(f"image {d['image_id']}: boxes, scores and labels lengths differ")
        image_id = int(d["image_id"])
        if known_ids is not None and image_id not in known_ids:
            raise ValueError(f"detections for image {image_id}, which has no entry in gts")
        out.append(dict(image_id=image_id, boxes=boxes, scores=scores, labels=labels))
    return out


def to_xywh(boxes: np.ndarray) -> np.ndarray:
    """xyxy ``[N, 4]`` -> xywh ``[N, 4]``."""
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)  # [N, 4]
