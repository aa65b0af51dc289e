"""VOC2007 11-point AP with the devkit's "difficult" rule, vectorised in numpy.

Detections of a class sorted by score (stable), each one looks at the ground truth of maximal IoU in its
image; IoU > threshold and the box is ignored -> the detection is ignored; IoU > threshold, regular and not
yet taken -> true positive; otherwise false positive. IoU is computed on continuous coordinates (no "+1"
pixel convention), like the COCO path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mgdet.boxes_np import box_iou_np
from mgdet.evaluation.coco import COCO_IOU_THRESHOLDS
from mgdet.evaluation.inputs import read_dets, read_gts

# The 11 recall points of VOC2007 AP, generated exactly as the official python devkit does.
VOC07_RECALL_POINTS = np.arange(0.0, 1.1, 0.1)


def _voc07_11pt(rec: np.ndarray, prec: np.ndarray) -> np.ndarray:
    """11-point VOC07 AP per row of rec/prec [T, D] (rows sorted by score) -> [T]."""
    t_count, d_count = rec.shape
    if d_count == 0:
        return np.zeros(t_count)
    envelope = np.maximum.accumulate(prec[:, ::-1], axis=1)[:, ::-1]  # max precision at recall >= rec[i]
    ap = np.empty(t_count)
    for t in range(t_count):  # T is 10: the loop is over thresholds, not over detections
        idx = np.searchsorted(rec[t], VOC07_RECALL_POINTS, side="left")  # first recall >= point
        ok = idx < d_count
        ap[t] = np.where(ok, envelope[t, np.minimum(idx, d_count - 1)], 0.0).sum() / len(VOC07_RECALL_POINTS)
    return ap


def voc07_ap(
    gts: Sequence[Mapping[str, Any]],
    dets: Sequence[Mapping[str, Any]],
    num_classes: int,
    iou_thresholds: Sequence[float] | np.ndarray = COCO_IOU_THRESHOLDS,
) -> tuple[np.ndarray, np.ndarray]:
    """VOC2007 11-point AP per class and IoU threshold, with the devkit's difficult rule.

    Returns:
        ap [K, T] (NaN for a class without any non-ignored ground truth) and num_gt [K] (non-ignored).
    """
    thr = np.asarray(iou_thresholds, np.float64).reshape(-1)  # [T]
    g_list = read_gts(gts)
    index = {g["image_id"]: i for i, g in enumerate(g_list)}
    d_list = read_dets(dets, set(index))
    n_img = len(g_list)

    def cat(key: str, items: list[dict[str, Any]], shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return np.concatenate([it[key] for it in items]) if items else np.zeros(shape, dtype)

    g_boxes = cat("boxes", g_list, (0, 4), np.float64)  # [NG, 4] ordered by image
    g_labels = cat("labels", g_list, (0,), np.int64)
    g_ignore = cat("ignore", g_list, (0,), bool)
    g_img = np.repeat(np.arange(n_img), [len(g["labels"]) for g in g_list]).astype(np.int64)
    d_boxes = cat("boxes", d_list, (0, 4), np.float64)  # [ND, 4]
    d_scores = cat("scores", d_list, (0,), np.float64)
    d_labels = cat("labels", d_list, (0,), np.int64)
    d_img = np.repeat([index[d["image_id"]] for d in d_list], [len(d["labels"]) for d in d_list])
    d_img = d_img.astype(np.int64)

    ap = np.full((num_classes, len(thr)), np.nan)
    num_gt = np.zeros(num_classes, np.int64)
    for k in range(num_classes):
        gsel = g_labels == k
        boxes_k, img_k, ign_k = g_boxes[gsel], g_img[gsel], g_ignore[gsel]  # class-k GT, image-ordered
        npos = int((~ign_k).sum())
        num_gt[k] = npos
        if npos == 0:
            continue  # AP undefined: the class is left out of the mean, as COCO does
        dsel = d_labels == k
        order = np.argsort(-d_scores[dsel], kind="mergesort")
        boxes_d, img_d = d_boxes[dsel][order], d_img[dsel][order]  # [D, 4], [D]
        n_det = len(img_d)
        if n_det == 0:
            ap[k] = 0.0
            continue
        # Pad class-k GT per image to [I, Gmax] so each detection gathers the GT of its own image.
        counts = np.bincount(img_k, minlength=n_img)
        slot = np.arange(len(img_k)) - (np.cumsum(counts) - counts)[img_k]
        g_max = int(counts.max())
        pad = np.zeros((n_img, g_max, 4))
        gid = np.full((n_img, g_max), -1, np.int64)
        pad[img_k, slot] = boxes_k
        gid[img_k, slot] = np.arange(len(img_k))
        cand = pad[img_d]  # [D, Gmax, 4]
        iou = box_iou_np(boxes_d[:, None, :], cand)  # [D, Gmax]
        iou[gid[img_d] < 0] = -1.0  # padding never wins the argmax
        jmax = iou.argmax(1)
        ovmax = iou[np.arange(n_det), jmax]  # [D]
        best = gid[img_d, jmax]  # [D] class-k GT index (-1: image has no class-k GT)
        best_ign = np.where(best >= 0, ign_k[np.maximum(best, 0)], False)

        hit = ovmax[None, :] > thr[:, None]  # [T, D]
        ignored = hit & best_ign[None, :]
        claim = hit & ~best_ign[None, :]
        # TP = first (highest-scored) detection claiming each GT at each threshold; later claims are FP.
        key = np.arange(len(thr))[:, None] * len(img_k) + best[None, :]  # unique per (threshold, GT)
        flat = np.flatnonzero(claim)
        _, first = np.unique(key.ravel()[flat], return_index=True)
        tp = np.zeros(claim.size, bool)
        tp[flat[first]] = True
        tp = tp.reshape(claim.shape)
        fp = ~tp & ~ignored
        ctp, cfp = np.cumsum(tp, 1), np.cumsum(fp, 1)
        rec = ctp / npos
        prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        ap[k] = _voc07_11pt(rec, prec)
    return ap, num_gt
