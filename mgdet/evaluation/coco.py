"""COCO metrics through faster-coco-eval: ground truth and detections as COCO dicts, the evaluator.

faster-coco-eval (like pycocotools) overwrites any ``ignore`` key of a ground-truth annotation with its
``iscrowd`` flag, so ignored boxes are sent as ``iscrowd=1``: they can absorb any number of detections and a
detection only falls on them when no regular ground truth of the class is available at the threshold. With
``ignore_mode="difficult"`` (default) the overlap with an ignored box is the ordinary IoU, as in the VOC
devkit; with ``ignore_mode="crowd"`` it is COCO's crowd overlap (intersection over detection area), which
reproduces the official COCO numbers for crowd regions.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster

from mgdet.boxes_np import pairwise_iou
from mgdet.evaluation.inputs import read_dets, read_gts, to_xywh

# IoU thresholds .50:.05:.95, shared by COCO AP and the paper's averaged VOC07 metric.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
# COCO area ranges (original pixels squared): small < 32², medium < 96², large otherwise.
AREA_LABELS = ("all", "small", "medium", "large")

IgnoreMode = Literal["difficult", "crowd"]


def _silent(*args: Any, **kwargs: Any) -> None:
    """A print function that prints nothing (faster-coco-eval reports progress through one)."""


def coco_gt_dict(gts: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """Build a COCO-style ground-truth dataset (the content of an ``instances_*.json``) in memory.

    Categories are ``1..K`` for labels ``0..K-1``; ``bbox`` is xywh and ``area`` the box area, both in
    original pixels; ignored boxes get ``iscrowd=1`` (the only ignore flag COCO evaluation honours).
    """
    images, annotations = [], []
    for g in read_gts(gts):
        images.append(dict(id=g["image_id"], height=g["height"], width=g["width"]))
        xywh = to_xywh(g["boxes"])
        for box, label, ign in zip(xywh.tolist(), g["labels"].tolist(), g["ignore"].tolist()):
            if not 0 <= label < len(class_names):
                raise ValueError(f"image {g['image_id']}: label {label} outside 0..{len(class_names) - 1}")
            annotations.append(
                dict(
                    id=len(annotations) + 1,  # COCO ids start at 1 (0 means "unmatched" inside COCOeval)
                    image_id=g["image_id"],
                    category_id=label + 1,
                    bbox=box,
                    area=box[2] * box[3],
                    iscrowd=int(ign),
                )
            )
    categories = [dict(id=i + 1, name=str(n)) for i, n in enumerate(class_names)]
    return dict(images=images, annotations=annotations, categories=categories)


def coco_results(dets: Sequence[Mapping[str, Any]], decimals: tuple[int, int] | None = None) -> list[dict[str, Any]]:
    """Detections as a COCO results list: ``{image_id, category_id (label + 1), bbox xywh, score}``.

    A detection dict's ``file_name``, when present, is copied into its entries (after ``image_id``);
    ``decimals = (bbox, score)`` rounds the values (the files of ``mgdet detect``).
    """
    out = []
    for raw, d in zip(dets, read_dets(dets, None)):
        name = {"file_name": raw["file_name"]} if "file_name" in raw else {}
        for box, score, label in zip(to_xywh(d["boxes"]).tolist(), d["scores"].tolist(), d["labels"].tolist()):
            if decimals is not None:
                box, score = [round(v, decimals[0]) for v in box], round(score, decimals[1])
            out.append(dict(image_id=d["image_id"], **name, category_id=int(label) + 1, bbox=box, score=float(score)))
    return out


class _DifficultEval(COCOeval_faster):
    """COCOeval whose overlap with crowd (= ignored) boxes is the ordinary IoU, as VOC does for difficult.

    faster-coco-eval's matching already gives crowd boxes the VOC "difficult" behaviour (a detection on
    them is neither TP nor FP, any number may land there); only the overlap measure differs (intersection
    over detection area for crowd). This override keeps the library's dt order (stable by score, cut at
    the largest maxDets) so the matrix lines up with what its C++ matcher expects.
    """

    def computeIoU(self, imgId: int, catId: int) -> np.ndarray | list:  # noqa: N802 (library API name)
        p = self.params
        cats = [catId] if p.useCats else p.catIds
        gt = self.gt_dataset.get_instances([imgId], cats, bool(p.useCats))[0][0]
        dt = self.dt_dataset.get_instances([imgId], cats, bool(p.useCats))[0][0]
        if len(gt) == 0 or len(dt) == 0:
            return []
        order = np.argsort([-d["score"] for d in dt], kind="mergesort")[: p.maxDets[-1]]
        d = np.array([dt[i]["bbox"] for i in order], np.float64)  # [D, 4] xywh
        g = np.array([o["bbox"] for o in gt], np.float64)  # [G, 4] xywh
        d[:, 2:] += d[:, :2]
        g[:, 2:] += g[:, :2]
        return pairwise_iou(d, g)  # [D, G]


def run_coco(
    gt_dict: dict[str, Any], results: list[dict[str, Any]], ignore_mode: IgnoreMode
) -> tuple[np.ndarray, np.ndarray, Any]:
    """Run faster-coco-eval silently; return precision [T,R,K,A,M], recall [T,K,A,M] and its params."""
    gt = COCO(gt_dict, print_function=_silent)
    anns = [dict(r, id=i + 1, area=r["bbox"][2] * r["bbox"][3], iscrowd=0) for i, r in enumerate(results)]
    dt_dict = dict(images=gt_dict["images"], categories=gt_dict["categories"], annotations=anns)
    dt = COCO(dt_dict, print_function=_silent)
    cls = _DifficultEval if ignore_mode == "difficult" else COCOeval_faster
    ev = cls(gt, dt, iouType="bbox", print_function=_silent)
    with contextlib.redirect_stdout(io.StringIO()):
        ev.evaluate()
        ev.accumulate()
    return np.asarray(ev.eval["precision"]), np.asarray(ev.eval["recall"]), ev.params


def mean_valid(x: np.ndarray) -> float:
    """Mean over entries > -1 (COCO marks "no ground truth" with -1); NaN when there are none."""
    v = x[x > -1]
    return float(v.mean()) if v.size else math.nan
