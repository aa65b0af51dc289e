"""Dense detector outputs -> detections, in numpy (no torch): the post-processing of every backend.

:func:`postprocess` is :meth:`mgdet.models.Detector.predict` after its dense step
(:meth:`~mgdet.models.Detector.dense_predictions`): per-image top-``pre_nms_topk`` over all (anchor, class)
pairs, ``score > score_thresh``, class-aware greedy NMS (identical to :func:`mgdet.nms.batched_nms`: boxes of
different classes never suppress each other, a box is dropped iff a kept higher-scored box of its class has
IoU strictly above ``nms_iou``), at most ``max_det`` per image, boxes optionally rescaled to original pixels.
Both deployment backends (:mod:`mgdet.deploy`: onnxruntime and torch) use it.

:class:`PostProcessParams` holds the paper's inference defaults; every other default (``Detector.predict``,
``EvalConfig``, the command line) reads them from :data:`PAPER_POSTPROCESS`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


# ------------------------------------------------------------------------------------------- parameters
@dataclass
class PostProcessParams:
    """Inference settings of :meth:`Detector.predict` and :func:`postprocess` (the paper's values by default)."""

    score_thresh: float = 0.005
    nms_iou: float = 0.5
    max_det: int = 300
    pre_nms_topk: int = 1000

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> PostProcessParams:
        """Pick the known keys of ``d`` (e.g. a run config's ``eval`` section); other keys are ignored."""
        d = d or {}
        defaults = asdict(cls())
        return cls(**{k: type(v)(d[k]) for k, v in defaults.items() if d.get(k) is not None})


#: The paper's inference settings: score > 0.005, class-aware NMS at IoU 0.5, 300 detections, top 1000.
PAPER_POSTPROCESS = PostProcessParams()


# ----------------------------------------------------------------------------------------------- NMS
def paired_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of aligned pairs given as coordinate rows ``[4, P] x [4, P] -> [P]`` float32, with the float32
    arithmetic of :func:`mgdet.boxes.box_iou` (same operations, same order), so NMS decisions match
    torch bit for bit."""
    iw = np.minimum(a[2], b[2])
    iw -= np.maximum(a[0], b[0])
    np.maximum(iw, 0, out=iw)
    ih = np.minimum(a[3], b[3])
    ih -= np.maximum(a[1], b[1])
    np.maximum(ih, 0, out=ih)
    inter = iw * ih
    area_a = np.maximum(a[2] - a[0], 0) * np.maximum(a[3] - a[1], 0)
    area_b = np.maximum(b[2] - b[0], 0) * np.maximum(b[3] - b[1], 0)
    union = area_a + area_b
    union -= inter
    return inter / np.maximum(union, np.finfo(np.float32).tiny)


def nms_sorted_batched(boxes: np.ndarray, labels: np.ndarray, valid: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy class-aware NMS on score-sorted candidates, batched: boxes ``[B, N, 4]``, labels ``[B, N]``,
    valid ``[B, N]`` bool (invalid entries take no part) -> keep ``[B, N]`` bool.

    ``S[b, j, i]``: j < i, same label, both valid, IoU > t. IoU is computed only for the same-label pairs
    (about 1/C of the matrix). The keep mask is the fixed point of ``keep[i] = valid[i] and not any_j
    (keep[j] and S[j, i])``, reached from "keep all valid" in at most N + 1 rounds (the algorithm of
    :mod:`mgdet.nms`); each round is one ``[B, N, N]`` boolean reduction.
    """
    bsz, n = labels.shape
    if n == 0:
        return valid.copy()
    pairs = labels[:, :, None] == labels[:, None, :]  # [B, N, N]
    pairs &= valid[:, :, None] & valid[:, None, :]
    pairs &= np.triu(np.ones((n, n), bool), k=1)  # only higher-scored (earlier) boxes suppress
    flat = np.flatnonzero(pairs)  # candidate pairs [P] as flat indices b*N*N + j*N + i
    cols = np.ascontiguousarray(boxes.reshape(bsz * n, 4).T, np.float32)  # [4, B*N]
    img, rest = np.divmod(flat, n * n)
    src, dst = np.divmod(rest, n)
    hit = paired_iou(cols.take(img * n + src, axis=1), cols.take(img * n + dst, axis=1)) > np.float32(iou_threshold)
    over = np.zeros(pairs.shape, bool)
    over.reshape(-1)[flat[hit]] = True
    keep = valid.copy()
    for _ in range(n + 1):
        new = valid & ~(over & keep[:, :, None]).any(axis=1)
        if np.array_equal(new, keep):
            break
        keep = new
    return keep


def batched_nms_np(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """numpy twin of :func:`mgdet.nms.batched_nms`: boxes ``[N, 4]``, scores ``[N]``, labels ``[N]`` ->
    kept indices ``[K]`` int64, score-descending (ties keep input order, as torch's stable sort)."""
    order = np.argsort(-np.asarray(scores, np.float32), kind="stable")  # [N]
    b = np.asarray(boxes, np.float32)[order][None]
    lab = np.asarray(labels)[order][None]
    keep = nms_sorted_batched(b, lab, np.ones(lab.shape, bool), iou_threshold)[0]
    return order[keep].astype(np.int64)


# ----------------------------------------------------------------------------------------- postprocess
def topk_pairs(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image top-``k`` over flattened (anchor, class) pairs of ``scores [B, A, C]`` -> (values ``[B, k]``
    score-descending, flat indices ``[B, k]``; ties by lower index)."""
    b = scores.shape[0]
    flat = scores.reshape(b, -1)  # [B, A*C]
    k = min(k, flat.shape[1])
    if k < flat.shape[1]:
        idx = np.argpartition(-flat, k - 1, axis=1)[:, :k]  # [B, k] unordered
    else:
        idx = np.broadcast_to(np.arange(flat.shape[1]), flat.shape)
    vals = np.take_along_axis(flat, idx, axis=1)
    order = np.lexsort((idx, -vals), axis=-1)  # primary key: score descending
    return np.take_along_axis(vals, order, axis=1), np.take_along_axis(idx, order, axis=1)


def postprocess(
    scores: np.ndarray,
    boxes: np.ndarray,
    params: PostProcessParams | None = None,
    scales: np.ndarray | None = None,
) -> list[dict[str, np.ndarray]]:
    """Dense outputs -> detections, as :meth:`Detector.predict` (see module docstring).

    scores ``[B, A, C]``, boxes ``[B, A, 4]`` (network pixels); ``scales [B, 2]`` ``(sy, sx)`` maps them
    back to original pixels (None: stay in network pixels). Returns per image ``boxes [N, 4]`` float32,
    ``scores [N]`` float32, ``labels [N]`` int64, score-descending, ``N <= max_det``.
    """
    p = params or PostProcessParams()
    bsz, _, c = scores.shape
    top_s, top_i = topk_pairs(scores.astype(np.float32, copy=False), p.pre_nms_topk)  # [B, k]
    anchor_i, labels = top_i // c, top_i % c
    top_boxes = np.take_along_axis(boxes.astype(np.float32, copy=False), anchor_i[..., None], axis=1)  # [B, k, 4]
    valid = top_s > np.float32(p.score_thresh)  # a prefix of each row (rows are sorted)
    n = int(valid.sum(axis=1).max()) if bsz else 0
    top_s, labels, top_boxes, valid = top_s[:, :n], labels[:, :n], top_boxes[:, :n], valid[:, :n]
    keep = nms_sorted_batched(top_boxes, labels, valid, p.nms_iou)  # [B, n]
    results = []
    for i in range(bsz):  # ragged outputs: one gather per image
        sel = np.flatnonzero(keep[i])[: p.max_det]
        bx = top_boxes[i, sel]
        if scales is not None:
            sy, sx = scales[i]
            bx = bx / np.array([sx, sy, sx, sy], np.float32)
        results.append(
            {"boxes": bx.astype(np.float32), "scores": top_s[i, sel], "labels": labels[i, sel].astype(np.int64)}
        )
    return results
