"""Deployment inference: one batched numpy pre/post-processing path shared by the ONNX and torch backends.

Pipeline (every step batched over images; no Python loop over boxes):

1. :func:`preprocess`: each image (uint8 RGB ``[H, W, 3]``) is converted to float in [0, 1] and resized
   to ``S x S`` with bilinear interpolation, aspect not kept (no letterbox), exactly as
   :class:`mgdet.data.EvalTransform`; the batch is ``[B, 3, S, S]`` float32 plus per-image ``(sy, sx)``.
2. A backend turns the batch into dense ``scores [B, A, C]`` and ``boxes [B, A, 4]`` (S-pixels, clipped):
   :class:`OnnxDetector` runs an exported file with onnxruntime, :class:`TorchDetector` runs
   :class:`mgdet.export.ScoresAndBoxes` (the same module that is exported).
3. :func:`postprocess` = :meth:`Detector.predict` in numpy: per-image top-``pre_nms_topk`` over all
   (anchor, class) pairs, ``score > score_thresh``, class-aware greedy NMS (identical to
   :func:`mgdet.nms.batched_nms`: boxes of different classes never suppress each other, a box is dropped
   iff a kept higher-scored box of its class has IoU strictly above ``nms_iou``), at most ``max_det`` per
   image, boxes rescaled to original pixels.

NMS lives here rather than in the ONNX graph; :mod:`mgdet.export` explains why.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np


# ------------------------------------------------------------------------------------------- parameters
@dataclass
class PostProcessParams:
    """Inference settings of :meth:`Detector.predict` (the paper's values by default)."""

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


# ------------------------------------------------------------------------------------------ preprocess
def preprocess(images: Sequence[np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """uint8 RGB images ``[H_i, W_i, 3]`` -> (batch ``[B, 3, H, W]`` float32 in [0, 1], scales ``[B, 2]``
    ``(sy, sx)`` = network pixels per original pixel). Same arithmetic as ``EvalTransform``."""
    h, w = size
    batch = np.empty((len(images), h, w, 3), np.float32)  # [B, H, W, 3]
    scales = np.empty((len(images), 2), np.float64)
    for i, im in enumerate(images):
        if im.ndim != 3 or im.shape[2] != 3:
            raise ValueError(f"image {i}: expected [H, W, 3] RGB, got shape {im.shape}")
        batch[i] = cv2.resize(im.astype(np.float32) / 255.0, (w, h), interpolation=cv2.INTER_LINEAR)
        scales[i] = (h / im.shape[0], w / im.shape[1])
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2)), scales


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


# -------------------------------------------------------------------------------------------- backends
class _Backend:
    """Common ``detect``: preprocess -> :meth:`forward` -> :func:`postprocess`. Subclasses set
    ``input_hw``, ``params``, ``class_names`` and implement ``forward``."""

    input_hw: tuple[int, int]
    params: PostProcessParams
    class_names: list[str]

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``[B, 3, H, W]`` float32 -> (scores ``[B, A, C]``, boxes ``[B, A, 4]``)."""
        raise NotImplementedError

    def detect(self, images: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """uint8 RGB images (any sizes) -> per image ``dict(boxes [N, 4] original pixels, scores, labels)``."""
        if len(images) == 0:
            return []
        batch, scales = preprocess(images, self.input_hw)
        scores, boxes = self.forward(batch)
        return postprocess(scores, boxes, self.params, scales)


class OnnxDetector(_Backend):
    """Runs a file written by :func:`mgdet.export.export_onnx` with onnxruntime.

    ``params`` overrides the post-processing parameters stored in the file; ``num_threads`` sets
    onnxruntime's intra-op threads (None: its default); ``providers`` defaults to CPU.
    """

    def __init__(
        self,
        path: str | Path,
        params: PostProcessParams | None = None,
        num_threads: int | None = None,
        providers: Sequence[str] | None = None,
    ) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: ONNX file not found")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if num_threads:
            opts.intra_op_num_threads = int(num_threads)
        self.session = ort.InferenceSession(str(self.path), opts, providers=list(providers or ["CPUExecutionProvider"]))
        meta = {k.removeprefix("mgdet."): v for k, v in self.session.get_modelmeta().custom_metadata_map.items()}
        self.metadata = meta
        self.class_names = list(json.loads(meta.get("class_names", "[]")))
        self.params = params or PostProcessParams.from_dict(json.loads(meta.get("postprocess", "{}")))
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        h, w = inp.shape[2], inp.shape[3]
        self.input_hw = (int(h), int(w)) if isinstance(h, int) else tuple(json.loads(meta["input_size"]))
        self.fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.fixed_batch is not None and batch.shape[0] != self.fixed_batch:  # static-batch export
            parts = [self.forward(batch[i : i + self.fixed_batch]) for i in range(0, batch.shape[0], self.fixed_batch)]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        scores, boxes = self.session.run(None, {self.input_name: np.ascontiguousarray(batch, np.float32)})
        return scores, boxes


class TorchDetector(_Backend):
    """The torch twin of :class:`OnnxDetector`: the same module that is exported, then the same numpy
    post-processing. ``channels_last`` converts the model and inputs; ``inference_mode`` is always on."""

    def __init__(
        self,
        detector: Any,
        params: PostProcessParams | None = None,
        class_names: Sequence[str] | None = None,
        device: str = "cpu",
        channels_last: bool = False,
    ) -> None:
        import torch

        from mgdet.export import ScoresAndBoxes

        self.torch = torch
        self.device = torch.device(device)
        self.model = ScoresAndBoxes(detector.to(self.device).eval()).eval()
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        size = detector.input_size
        self.input_hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.params = params or PostProcessParams()
        self.class_names = list(class_names or [])

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)  # [B, 3, H, W]
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            scores, boxes = self.model(x)
        return scores.float().cpu().numpy(), boxes.float().cpu().numpy()


# ------------------------------------------------------------------------------------ files and the CLI
def detect_paths(
    backend: _Backend, paths: Sequence[Path], batch_size: int = 8, progress: bool = True
) -> Iterator[tuple[Path, np.ndarray, dict[str, np.ndarray]]]:
    """Stream ``(path, image RGB, detections in original pixels)``, reading ``batch_size`` images at a time."""
    from tqdm import tqdm

    from mgdet.data.image_io import read_image

    with tqdm(total=len(paths), desc="detect", unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), batch_size):
            chunk = paths[start : start + batch_size]
            images = [read_image(p) for p in chunk]
            for p, im, d in zip(chunk, images, backend.detect(images)):
                yield p, im, d
                bar.update(1)


def coco_results(image_id: int, file_name: str, det: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """One image's detections as COCO result entries: ``bbox`` xywh, ``category_id`` = label + 1 (as
    :func:`mgdet.engine.evaluate.coco_results`), plus ``file_name`` for reference."""
    xywh = np.concatenate([det["boxes"][:, :2], det["boxes"][:, 2:] - det["boxes"][:, :2]], axis=1)  # [N, 4]
    return [
        {"image_id": image_id, "file_name": file_name, "category_id": int(lb) + 1,
         "bbox": [round(float(v), 2) for v in b], "score": round(float(s), 4)}
        for b, s, lb in zip(xywh, det["scores"], det["labels"])
    ]  # fmt: skip


def write_detections(
    stream: Iterator[tuple[Path, np.ndarray, dict[str, np.ndarray]]],
    out: Path,
    class_names: Sequence[str] | None,
    show_thresh: float = 0.3,
) -> list[tuple[str, int, str]]:
    """Consume a detection stream: annotated ``out/<stem>.jpg`` per image, ``out/detections.json`` (the
    format of ``mgdet detect``) and ``out/detections_coco.json`` (COCO results list). Returns table rows
    ``(image, boxes >= show_thresh, top score)``."""
    from mgdet.engine.draw import draw_detections

    out.mkdir(parents=True, exist_ok=True)
    names = list(class_names or [])
    records, coco, counts = [], [], []
    for image_id, (path, image, d) in enumerate(stream):
        keep = d["scores"] >= show_thresh
        drawn = draw_detections(image, d["boxes"][keep], d["scores"][keep], d["labels"][keep], names)
        cv2.imwrite(str(out / f"{path.stem}.jpg"), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        records.append({
            "file": str(path),
            "detections": [
                {"bbox_xyxy": [round(float(v), 2) for v in b], "score": round(float(s), 4), "label": int(lb),
                 "class": names[int(lb)] if int(lb) < len(names) else str(int(lb))}
                for b, s, lb in zip(d["boxes"], d["scores"], d["labels"])
            ],
        })  # fmt: skip
        coco.extend(coco_results(image_id, path.name, d))
        counts.append((path.name, int(keep.sum()), f"{float(d['scores'].max()) if len(d['scores']) else 0:.3f}"))
    (out / "detections.json").write_text(json.dumps(records, indent=1))
    (out / "detections_coco.json").write_text(json.dumps(coco))
    return counts


def _providers(device: str) -> list[str]:
    import onnxruntime as ort

    if device.startswith("cuda") or device == "auto":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device.startswith("cuda"):
            print("onnxruntime has no CUDA provider here; running on CPU", file=sys.stderr)
    return ["CPUExecutionProvider"]


def detect_onnx(args: argparse.Namespace) -> int:
    """``mgdet detect FILE.onnx IMAGES... --out DIR --backend onnx``: the ``mgdet detect`` outputs
    (annotated images, detections.json, plus detections_coco.json) computed with onnxruntime."""
    from mgdet.engine.inference import collect_images
    from mgdet.engine.table import format_table

    backend = OnnxDetector(args.checkpoint, providers=_providers(args.device))
    # the command line wins over the file's stored values (pre_nms_topk stays the stored one)
    backend.params = replace(backend.params, score_thresh=args.score_thresh, nms_iou=args.nms_iou,
                             max_det=args.max_det)  # fmt: skip
    paths = collect_images(args.images)
    out = Path(args.out)
    stream = detect_paths(backend, paths, batch_size=args.batch_size, progress=not args.no_progress)
    counts = write_detections(stream, out, backend.class_names, args.show_thresh)
    print(format_table(counts[:50], ["image", f"boxes >= {args.show_thresh}", "top score"]))
    if len(counts) > 50:
        print(f"... {len(counts) - 50} more")
    print(f"annotated images, detections.json and detections_coco.json written to {out} (onnxruntime)")
    return 0
