"""Detection evaluation: COCO metrics (through faster-coco-eval), VOC07 metrics (numpy), misalignment rate.

Inputs are plain per-image dicts so that any dataset (VOC, COCO, the shipped benchmark) can be evaluated
without writing annotation files:

```python
gts  = [dict(image_id=7, boxes=[N, 4] xyxy original pixels, labels=[N] 0-based, ignore=[N] bool,
             height=H, width=W), ...]
dets = [dict(image_id=7, boxes=[M, 4] xyxy original pixels, scores=[M], labels=[M] 0-based), ...]
result = evaluate(gts, dets, class_names)
result.metrics["AP"], result.metrics["voc07_map50"], result.per_class[0]["AP50"]
```

Arrays may be numpy arrays, torch tensors (any device) or nested lists.

Ignored ground truth (VOC "difficult", COCO "crowd", ``ignore=True``) never counts as a positive, and a
detection that is matched to it is neither a true nor a false positive. Two details differ by path:

* COCO path. faster-coco-eval (like pycocotools) overwrites any ``ignore`` key of a ground-truth
  annotation with its ``iscrowd`` flag, so ignored boxes are sent as ``iscrowd=1``: they can absorb any
  number of detections and a detection only falls on them when no regular ground truth of the class is
  available at the threshold. With ``ignore_mode="difficult"`` (default) the overlap with an ignored box
  is the ordinary IoU, as in the VOC devkit; with ``ignore_mode="crowd"`` it is COCO's crowd overlap
  (intersection over detection area), which reproduces the official COCO numbers for crowd regions.
* VOC path. The devkit rule: detections of a class sorted by score (stable), each one looks at the
  ground truth of maximal IoU in its image; IoU > threshold and the box is ignored -> the detection is
  ignored; IoU > threshold, regular and not yet taken -> true positive; otherwise false positive. IoU is
  computed on continuous coordinates (no "+1" pixel convention), like the COCO path.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from faster_coco_eval import COCO, COCOeval_faster

from mgdet.engine.table import format_table

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "EvalResult",
    "coco_gt_dict",
    "coco_results",
    "evaluate",
    "misalignment_rate",
    "pairwise_iou",
    "voc07_ap",
]

# IoU thresholds .50:.05:.95, shared by COCO AP and the paper's averaged VOC07 metric.
COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
# The 11 recall points of VOC2007 AP, generated exactly as the official python devkit does.
VOC07_RECALL_POINTS = np.arange(0.0, 1.1, 0.1)
# COCO area ranges (original pixels squared): small < 32², medium < 96², large otherwise.
AREA_LABELS = ("all", "small", "medium", "large")

IgnoreMode = Literal["difficult", "crowd"]


def _silent(*args: Any, **kwargs: Any) -> None:
    """A print function that prints nothing (faster-coco-eval reports progress through one)."""


# ----------------------------------------------------------------------------------------------------------
# input normalisation
# ----------------------------------------------------------------------------------------------------------
def _np(x: Any, dtype: Any) -> np.ndarray:
    """Convert a numpy array, torch tensor or (nested) list to a numpy array of ``dtype``."""
    if hasattr(x, "detach"):  # torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _boxes(x: Any) -> np.ndarray:
    return _np(x if x is not None else np.zeros((0, 4)), np.float64).reshape(-1, 4)  # [N, 4]


def _read_gts(gts: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
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


def _read_dets(dets: Sequence[Mapping[str, Any]], known_ids: set[int] | None) -> list[dict[str, Any]]:
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


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of ``a`` [N, 4] and of ``b`` [M, 4] (xyxy, continuous coords) -> [N, M]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)  # [N]
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)  # [M]
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # [N, M, 2]
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])  # [N, M, 2]
    wh = (rb - lt).clip(0)
    inter = wh[..., 0] * wh[..., 1]  # [N, M]
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _xywh(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)  # [N, 4]


# ----------------------------------------------------------------------------------------------------------
# COCO path
# ----------------------------------------------------------------------------------------------------------
def coco_gt_dict(gts: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """Build a COCO-style ground-truth dataset (the content of an ``instances_*.json``) in memory.

    Categories are ``1..K`` for labels ``0..K-1``; ``bbox`` is xywh and ``area`` the box area, both in
    original pixels; ignored boxes get ``iscrowd=1`` (the only ignore flag COCO evaluation honours).
    """
    images, annotations = [], []
    for g in _read_gts(gts):
        images.append(dict(id=g["image_id"], height=g["height"], width=g["width"]))
        xywh = _xywh(g["boxes"])
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


def coco_results(dets: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Detections as a COCO results list: ``{image_id, category_id (label + 1), bbox xywh, score}``."""
    out = []
    for d in _read_dets(dets, None):
        for box, score, label in zip(_xywh(d["boxes"]).tolist(), d["scores"].tolist(), d["labels"].tolist()):
            out.append(dict(image_id=d["image_id"], category_id=int(label) + 1, bbox=box, score=float(score)))
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


def _run_coco(
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


def _mean_valid(x: np.ndarray) -> float:
    """Mean over entries > -1 (COCO marks "no ground truth" with -1); NaN when there are none."""
    v = x[x > -1]
    return float(v.mean()) if v.size else math.nan


# ----------------------------------------------------------------------------------------------------------
# VOC path
# ----------------------------------------------------------------------------------------------------------
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
    g_list = _read_gts(gts)
    index = {g["image_id"]: i for i, g in enumerate(g_list)}
    d_list = _read_dets(dets, set(index))
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
        lt = np.maximum(boxes_d[:, None, :2], cand[..., :2])
        rb = np.minimum(boxes_d[:, None, 2:], cand[..., 2:])
        inter = (rb - lt).clip(0).prod(-1)  # [D, Gmax]
        area_d = (boxes_d[:, 2:] - boxes_d[:, :2]).clip(0).prod(-1)
        area_g = (cand[..., 2:] - cand[..., :2]).clip(0).prod(-1)
        union = area_d[:, None] + area_g - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
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


# ----------------------------------------------------------------------------------------------------------
# result
# ----------------------------------------------------------------------------------------------------------
def _json_safe(x: Any) -> Any:
    """NaN -> None, numpy scalars/arrays -> Python, recursively (strict JSON has no NaN)."""
    if isinstance(x, Mapping):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.ndarray):
        return _json_safe(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


SUMMARY_KEYS = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR100",
    "voc07_map50",
    "voc07_ap_50_95",
    "voc07_ap75",
)


@dataclass
class EvalResult:
    """Everything ``evaluate`` measured.

    Attributes:
        metrics: flat dict of floats in [0, 1] (NaN when undefined, e.g. APs without small objects):
            COCO ``AP`` (.50:.95), ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl``, ``AR1``, ``AR10``,
            ``AR100``; VOC ``voc07_map50`` (11-point at IoU .5), ``voc07_ap_50_95`` (11-point averaged
            over .50:.05:.95, the paper's Table-1 metric), ``voc07_ap50``, ``voc07_ap75`` (same scheme).
        per_class: one dict per class: ``name``, ``AP``, ``AP50``, ``AP75`` (COCO), ``voc07_AP50``,
            ``voc07_AP_50_95`` and ``num_gt`` (non-ignored boxes). AP values are NaN without ground truth.
        precision: COCO precision [T, R, K] at area "all", maxDets 100 (-1 where a class has no GT),
            for PR curves against ``recall_thresholds`` [R] at ``iou_thresholds`` [T].
        coco_results: detections as a COCO results list (``json.dump`` it for a results file).
    """

    metrics: dict[str, float]
    per_class: list[dict[str, Any]]
    precision: np.ndarray
    coco_results: list[dict[str, Any]]
    class_names: list[str] = field(default_factory=list)
    iou_thresholds: np.ndarray = field(default_factory=lambda: COCO_IOU_THRESHOLDS.copy())
    recall_thresholds: np.ndarray = field(default_factory=lambda: np.linspace(0.0, 1.0, 101))

    @staticmethod
    def table_headers(per_class: bool = False) -> list[str]:
        """Column titles matching ``table(per_class)``."""
        if per_class:
            return ["class", "num_gt", "AP", "AP50", "AP75", "VOC07 AP50", "VOC07 AP50:95"]
        return ["metric", "value"]

    def table(self, per_class: bool = False) -> list[list[Any]]:
        """Rows for a summary table (pair with ``table_headers``; floats are formatted by ``format_table``).

        ``per_class=False``: one ``[metric, value]`` row per headline metric. ``per_class=True``: one row
        per class and a final ``mean`` row (means over classes with ground truth).
        """
        if not per_class:
            return [[k, self.metrics[k]] for k in SUMMARY_KEYS if k in self.metrics]
        rows: list[list[Any]] = [
            [c["name"], c["num_gt"], c["AP"], c["AP50"], c["AP75"], c["voc07_AP50"], c["voc07_AP_50_95"]]
            for c in self.per_class
        ]
        m = self.metrics
        total = sum(int(c["num_gt"]) for c in self.per_class)
        rows.append(["mean", total, m["AP"], m["AP50"], m["AP75"], m["voc07_map50"], m["voc07_ap_50_95"]])
        return rows

    def summary(self, per_class: bool = False, style: str = "box") -> str:
        """The table as text, ready to print."""
        return format_table(self.table(per_class), self.table_headers(per_class), style=style)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict with metrics, per-class values and class names (NaN becomes null)."""
        return _json_safe(dict(metrics=self.metrics, per_class=self.per_class, class_names=self.class_names))

    def save_json(self, path: str | Path) -> None:
        """Write ``to_dict()`` to ``path`` (strict JSON)."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False))

    def save_coco_results(self, path: str | Path) -> None:
        """Write ``coco_results`` as a COCO results json (loadable with ``COCO.loadRes``)."""
        Path(path).write_text(json.dumps(self.coco_results))


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
    g_list = _read_gts(gts)
    d_list = _read_dets(dets, {g["image_id"] for g in g_list})
    for d in d_list:
        if len(d["labels"]) and not (d["labels"].min() >= 0 and d["labels"].max() < num_classes):
            raise ValueError(f"image {d['image_id']}: detection label outside 0..{num_classes - 1}")

    results = coco_results(d_list)
    gt_dict = coco_gt_dict(g_list, class_names)
    if g_list:
        prec, rec, params = _run_coco(gt_dict, results, ignore_mode)
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
        "AP": _mean_valid(p_all),
        "AP50": _mean_valid(p_all[t50]),
        "AP75": _mean_valid(p_all[t75]),
        "APs": _mean_valid(prec[:, :, :, area_lbl.index("small"), m100]),
        "APm": _mean_valid(prec[:, :, :, area_lbl.index("medium"), m100]),
        "APl": _mean_valid(prec[:, :, :, area_lbl.index("large"), m100]),
    }
    for m, n in enumerate(max_dets):
        metrics[f"AR{n}"] = _mean_valid(rec[:, :, a_all, m])

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
            AP=_mean_valid(p_all[:, :, k]),
            AP50=_mean_valid(p_all[t50, :, k]),
            AP75=_mean_valid(p_all[t75, :, k]),
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


# ----------------------------------------------------------------------------------------------------------
# misalignment
# ----------------------------------------------------------------------------------------------------------
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
    g_by_id = {g["image_id"]: g for g in _read_gts(gts)}
    before = {d["image_id"]: d for d in _read_dets(dets_before_nms, None)}
    empty_g = dict(boxes=np.zeros((0, 4)), labels=np.zeros(0, np.int64), ignore=np.zeros(0, bool))
    empty_d = dict(boxes=np.zeros((0, 4)), labels=np.zeros(0, np.int64), scores=np.zeros(0))
    count = total = 0
    for kept in _read_dets(dets_after_nms, None):
        sel = kept["scores"] >= score_thresh
        k_boxes, k_scores, k_labels = kept["boxes"][sel], kept["scores"][sel], kept["labels"][sel]  # [K, ...]
        total += int(sel.sum())
        g = g_by_id.get(kept["image_id"], empty_g)
        p = before.get(kept["image_id"], empty_d)
        keep_g = ~g["ignore"]
        g_boxes, g_labels = g["boxes"][keep_g], g["labels"][keep_g]  # [G, 4], [G]
        if len(k_boxes) == 0 or len(g_boxes) == 0 or len(p["boxes"]) == 0:
            continue
        same_kg = k_labels[:, None] == g_labels[None, :]  # [K, G]
        poor = ~((pairwise_iou(k_boxes, g_boxes) >= poor_iou) & same_kg).any(1)  # [K]
        same_pg = p["labels"][:, None] == g_labels[None, :]  # [P, G]
        good = ((pairwise_iou(p["boxes"], g_boxes) >= good_iou) & same_pg).any(1)  # [P]
        better = (
            (p["labels"][None, :] == k_labels[:, None])  # same class
            & (p["scores"][None, :] < k_scores[:, None])  # scored lower than the kept box
            & good[None, :]
        )  # [K, P]
        if suppress_iou is not None:
            better &= pairwise_iou(k_boxes, p["boxes"]) >= suppress_iou
        count += int((poor & better.any(1)).sum())
    return (count / total if total else 0.0), count, total
