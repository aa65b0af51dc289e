"""``evaluate``: COCO (faster-coco-eval) and VOC07 metrics of detections against ground truth, one result."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mgdet.evaluation.coco import (
    AREA_LABELS,
    COCO_IOU_THRESHOLDS,
    IgnoreMode,
    coco_gt_dict,
    coco_results,
    mean_valid,
    run_coco,
)
from mgdet.evaluation.inputs import read_dets, read_gts
from mgdet.evaluation.result import EvalResult
from mgdet.evaluation.voc07 import voc07_ap


def evaluate(
    gts: Sequence[Mapping[str, Any]],
    dets: Sequence[Mapping[str, Any]],
    class_names: Sequence[str],
    iou_type: str = "bbox",
    ignore_mode: IgnoreMode = "difficult",
) -> EvalResult:
    """Evaluate detections against ground truth with COCO and VOC07 metrics.

    Args:
        gts: one dict per evaluated image: ``image_id`` (int), ``boxes`` [N, 4] xyxy original pixels,
            ``labels`` [N] 0-based, ``ignore`` [N] bool (optional), ``height``, ``width`` (or ``size``).
            Every image to evaluate must be listed, also those without objects.
        dets: one dict per image with detections: ``image_id``, ``boxes`` [M, 4] xyxy original pixels,
            ``scores`` [M], ``labels`` [M]. Images may be missing (no detections).
        class_names: K names; labels are ``0..K-1`` (COCO category ids ``1..K``).
        iou_type: only ``"bbox"``.
        ignore_mode: how ignored GT overlaps detections in the COCO path: ``"difficult"`` (plain IoU,
            VOC semantics) or ``"crowd"`` (COCO crowd overlap, for official COCO numbers).

    Returns:
        An ``EvalResult``. COCO metrics use at most 100 detections per image (COCO's rule); VOC metrics
        use all of them.
    """
    if iou_type != "bbox":
        raise ValueError(f"only iou_type='bbox' is supported, got {iou_type!r}")
    if ignore_mode not in ("difficult", "crowd"):
        raise ValueError(f"ignore_mode must be 'difficult' or 'crowd', got {ignore_mode!r}")
    class_names = [str(n) for n in class_names]
    num_classes = len(class_names)
    g_list = read_gts(gts)
    d_list = read_dets(dets, {g["image_id"] for g in g_list})
    for d in d_list:
        if len(d["labels"]) and not (d["labels"].min() >= 0 and d["labels"].max() < num_classes):
            raise ValueError(f"image {d['image_id']}: detection label outside 0..{num_classes - 1}")

    results = coco_results(d_list)
    gt_dict = coco_gt_dict(g_list, class_names)
    if g_list:
        prec, rec, params = run_coco(gt_dict, results, ignore_mode)
        area_lbl = list(params.areaRngLbl)
        iou_thrs = np.asarray(params.iouThrs)
        rec_thrs = np.asarray(params.recThrs)
        max_dets = list(params.maxDets)
    else:  # nothing to evaluate: every COCO value is undefined
        area_lbl, iou_thrs, max_dets = list(AREA_LABELS), COCO_IOU_THRESHOLDS, [1, 10, 100]
        rec_thrs = np.linspace(0.0, 1.0, 101)
        prec = -np.ones((len(iou_thrs), len(rec_thrs), num_classes, len(area_lbl), len(max_dets)))
        rec = -np.ones((len(iou_thrs), num_classes, len(area_lbl), len(max_dets)))
    t50 = int(np.argmin(np.abs(iou_thrs - 0.5)))
    t75 = int(np.argmin(np.abs(iou_thrs - 0.75)))
    a_all = area_lbl.index("all")
    m100 = len(max_dets) - 1
    p_all = prec[:, :, :, a_all, m100]  # [T, R, K]

    metrics: dict[str, float] = {
        "AP": mean_valid(p_all),
        "AP50": mean_valid(p_all[t50]),
        "AP75": mean_valid(p_all[t75]),
        "APs": mean_valid(prec[:, :, :, area_lbl.index("small"), m100]),
        "APm": mean_valid(prec[:, :, :, area_lbl.index("medium"), m100]),
        "APl": mean_valid(prec[:, :, :, area_lbl.index("large"), m100]),
    }
    for m, n in enumerate(max_dets):
        metrics[f"AR{n}"] = mean_valid(rec[:, :, a_all, m])

    voc, num_gt = voc07_ap(g_list, d_list, num_classes, COCO_IOU_THRESHOLDS)  # [K, T], [K]
    v50 = int(np.argmin(np.abs(COCO_IOU_THRESHOLDS - 0.5)))
    v75 = int(np.argmin(np.abs(COCO_IOU_THRESHOLDS - 0.75)))
    has_gt = num_gt > 0

    def class_mean(x: np.ndarray) -> float:
        return float(np.mean(x[has_gt])) if has_gt.any() else math.nan

    metrics["voc07_map50"] = class_mean(voc[:, v50])
    metrics["voc07_ap50"] = metrics["voc07_map50"]
    metrics["voc07_ap75"] = class_mean(voc[:, v75])
    metrics["voc07_ap_50_95"] = class_mean(voc.mean(1))

    per_class = [
        dict(
            name=name,
            AP=mean_valid(p_all[:, :, k]),
            AP50=mean_valid(p_all[t50, :, k]),
            AP75=mean_valid(p_all[t75, :, k]),
            voc07_AP50=float(voc[k, v50]),
            voc07_AP_50_95=float(voc[k].mean()),
            num_gt=int(num_gt[k]),
        )
        for k, name in enumerate(class_names)
    ]
    return EvalResult(
        metrics=metrics,
        per_class=per_class,
        precision=np.array(p_all, np.float64),
        coco_results=results,
        class_names=class_names,
        iou_thresholds=np.array(iou_thrs, np.float64),
        recall_thresholds=np.array(rec_thrs, np.float64),
    )
