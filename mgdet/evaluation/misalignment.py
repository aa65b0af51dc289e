"""The misalignment rate: how often NMS keeps a better-scored but worse-localized box (paper, section 3.3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mgdet.boxes_np import pairwise_iou
from mgdet.evaluation.inputs import read_dets, read_gts


def misalignment_rate(
    gts: Sequence[Mapping[str, Any]],
    dets_before_nms: Sequence[Mapping[str, Any]],
    dets_after_nms: Sequence[Mapping[str, Any]],
    score_thresh: float = 0.05,
    poor_iou: float = 0.5,
    good_iou: float = 0.75,
    suppress_iou: float | None = None,
) -> tuple[float, int, int]:
    """Share of kept detections where NMS preferred a better-scored but worse-localized box.

    This measures the task misalignment of the paper (section 3.3). Definition, per image:

    * kept detections ``K`` = entries of ``dets_after_nms`` with ``score >= score_thresh``; ``total`` is
      their number over all images (images absent from ``gts`` have no ground truth);
    * ground truth = the image's non-ignored GT boxes (ignored / difficult boxes are left out);
    * a kept detection ``k`` of class ``c`` is **misaligned** when
      (a) its IoU with every GT of class ``c`` in the image is ``< poor_iou``, and
      (b) some detection ``p`` in ``dets_before_nms`` of the same image with class ``c`` and
      ``score(p) < score(k)`` has IoU ``>= good_iou`` with at least one GT of class ``c`` of the image,
      and, if ``suppress_iou`` is given, IoU(``p``, ``k``) ``>= suppress_iou`` (``p`` is a box that
      ``k`` itself would suppress in NMS at that threshold).

    ``count`` is the number of misaligned kept detections and ``rate = count / total`` (0.0 when
    ``total == 0``). Boxes are xyxy in one common frame for all three inputs.

    Returns:
        ``(rate, count, total)``.
    """
    examples = misaligned_detections(gts, dets_before_nms, dets_after_nms, score_thresh, poor_iou, good_iou,
                                     suppress_iou)  # fmt: skip
    total = kept_count(dets_after_nms, score_thresh)
    return (len(examples) / total if total else 0.0), len(examples), total


def kept_count(dets_after_nms: Sequence[Mapping[str, Any]], score_thresh: float = 0.05) -> int:
    """The number of kept detections the misalignment rate is a share of (score >= ``score_thresh``)."""
    return sum(int((d["scores"] >= score_thresh).sum()) for d in read_dets(dets_after_nms, None))


def misaligned_detections(
    gts: Sequence[Mapping[str, Any]],
    dets_before_nms: Sequence[Mapping[str, Any]],
    dets_after_nms: Sequence[Mapping[str, Any]],
    score_thresh: float = 0.05,
    poor_iou: float = 0.5,
    good_iou: float = 0.75,
    suppress_iou: float | None = None,
) -> list[dict[str, Any]]:
    """The misaligned kept detections of :func:`misalignment_rate` (same definition and arguments), one dict
    each: ``image_id``, ``label``, the kept ``box`` [4] and ``score``, and the best-localized lower-scored
    candidate of the same class, ``better_box`` [4], ``better_score``, ``better_iou`` (its IoU with the GT)."""
    g_by_id = {g["image_id"]: g for g in read_gts(gts)}
    before = {d["image_id"]: d for d in read_dets(dets_before_nms, None)}
    empty_g = dict(boxes=np.zeros((0, 4)), labels=np.zeros(0, np.int64), ignore=np.zeros(0, bool))
    empty_d = dict(boxes=np.zeros((0, 4)), labels=np.zeros(0, np.int64), scores=np.zeros(0))
    found: list[dict[str, Any]] = []
    for kept in read_dets(dets_after_nms, None):
        sel = kept["scores"] >= score_thresh
        k_boxes, k_scores, k_labels = kept["boxes"][sel], kept["scores"][sel], kept["labels"][sel]  # [K, ...]
        g = g_by_id.get(kept["image_id"], empty_g)
        p = before.get(kept["image_id"], empty_d)
        keep_g = ~g["ignore"]
        g_boxes, g_labels = g["boxes"][keep_g], g["labels"][keep_g]  # [G, 4], [G]
        if len(k_boxes) == 0 or len(g_boxes) == 0 or len(p["boxes"]) == 0:
            continue
        same_kg = k_labels[:, None] == g_labels[None, :]  # [K, G]
        poor = ~((pairwise_iou(k_boxes, g_boxes) >= poor_iou) & same_kg).any(1)  # [K]
        same_pg = p["labels"][:, None] == g_labels[None, :]  # [P, G]
        p_iou = np.where(same_pg, pairwise_iou(p["boxes"], g_boxes), 0.0).max(1)  # [P] best same-class GT IoU
        better = (
            (p["labels"][None, :] == k_labels[:, None])  # same class
            & (p["scores"][None, :] < k_scores[:, None])  # scored lower than the kept box
            & (p_iou >= good_iou)[None, :]
        )  # [K, P]
        if suppress_iou is not None:
            better &= pairwise_iou(k_boxes, p["boxes"]) >= suppress_iou
        for k in np.flatnonzero(poor & better.any(1)):
            j = int(np.argmax(np.where(better[k], p_iou, -1.0)))
            found.append({"image_id": kept["image_id"], "label": int(k_labels[k]), "box": k_boxes[k].tolist(),
                          "score": float(k_scores[k]), "better_box": p["boxes"][j].tolist(),
                          "better_score": float(p["scores"][j]), "better_iou": float(p_iou[j])})  # fmt: skip
    return found
