"""Statistics of the benchmark's hard cases (the ``stats`` block of ``benchmark.json``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mgdet.boxes_np import pairwise_iou
from mgdet.data.benchmark.scene import CLASS_NAMES, Sample


def sample_statistics(samples: Sequence[Sample], image_size: int) -> dict:
    """Counts of the hard cases over rendered samples (the ``stats`` block of ``benchmark.json``).

    Only ``boxes``, ``labels``, ``truncated`` and ``occlusion`` are read (masks may be stripped).
    """
    per_class = np.zeros(len(CLASS_NAMES), np.int64)
    n_obj = np.array([len(x) for x in samples], np.int64)
    pairs_mid = pairs_any = occluded = heavily = truncated = 0
    rel: list[np.ndarray] = []
    areas: list[np.ndarray] = []
    for x in samples:
        if not len(x):
            continue
        per_class += np.bincount(x.labels, minlength=len(CLASS_NAMES))
        iou = pairwise_iou(x.boxes, x.boxes)[np.triu_indices(len(x), 1)]
        pairs_mid += int(np.count_nonzero((iou >= 0.1) & (iou <= 0.5)))
        pairs_any += int(np.count_nonzero(iou > 0))
        occluded += int(np.count_nonzero(x.occlusion > 0.05))
        heavily += int(np.count_nonzero(x.occlusion > 0.4))
        truncated += int(np.count_nonzero(x.truncated))
        wh = x.boxes[:, 2:] - x.boxes[:, :2]
        rel.append(wh.max(axis=1) / image_size)
        areas.append(wh.prod(axis=1))
    rel_all = np.concatenate(rel) if rel else np.zeros(0)
    area_all = np.concatenate(areas) if areas else np.zeros(0)
    total = int(n_obj.sum())
    return {
        "images": len(samples),
        "objects": total,
        "empty_images": int(np.count_nonzero(n_obj == 0)),
        "max_objects_per_image": int(n_obj.max()) if len(n_obj) else 0,
        "objects_per_class": {name: int(c) for name, c in zip(CLASS_NAMES, per_class)},
        "overlapping_pairs_iou_0.1_0.5": pairs_mid,
        "overlapping_pairs_any": pairs_any,
        "occluded_objects": occluded,  # more than 5% of the in-image pixels hidden
        "heavily_occluded_objects": heavily,  # more than 40% hidden
        "truncated_objects": truncated,
        "box_side_min_frac": round(float(rel_all.min()), 4) if total else 0.0,
        "box_side_max_frac": round(float(rel_all.max()), 4) if total else 0.0,
        "box_side_median_frac": round(float(np.median(rel_all)), 4) if total else 0.0,
        "coco_small": int(np.count_nonzero(area_all < 32**2)),
        "coco_medium": int(np.count_nonzero((area_all >= 32**2) & (area_all < 96**2))),
        "coco_large": int(np.count_nonzero(area_all >= 96**2)),
    }
