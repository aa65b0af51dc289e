"""Deployment inference: a numpy pre-processing step, two backends, and the shared numpy post-processing.

Pipeline (every step batched over images; no Python loop over boxes):

1. :func:`preprocess`: each image (uint8 RGB ``[H, W, 3]``) is converted to float in [0, 1] and resized
   to ``S x S`` with bilinear interpolation, aspect not kept (no letterbox), exactly as
   :class:`mgdet.data.EvalTransform`; the batch is ``[B, 3, S, S]`` float32 plus per-image ``(sy, sx)``.
2. A backend turns the batch into dense ``scores [B, A, C]`` and ``boxes [B, A, 4]`` (S-pixels, clipped):
   :class:`OnnxDetector` runs an exported file with onnxruntime, :class:`TorchDetector` runs
   :meth:`Detector.dense_predictions` (what the exported graph computes).
3. :func:`mgdet.postprocess.postprocess` (numpy, torch-free): threshold, per-image top-k, class-aware NMS,
   ``max_det``, boxes rescaled to original pixels.

NMS lives outside the ONNX graph; :mod:`mgdet.export` explains why. The post-processing names
(``PostProcessParams``, ``postprocess``, ``batched_nms_np``, ...) are re-exported here for older imports.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mgdet.catalog import as_hw
from mgdet.errors import InputFileError
from mgdet.evaluation.coco import coco_results
from mgdet.postprocess import (
    PostProcessParams,
    batched_nms_np,
    nms_sorted_batched,
    paired_iou,
    postprocess,
    topk_pairs,
)

__all__ = [
    "OnnxDetector",
    "PostProcessParams",
    "TorchDetector",
    "batched_nms_np",
    "detect_paths",
    "nms_sorted_batched",
    "paired_iou",
    "postprocess",
    "preprocess",
    "topk_pairs",
    "write_detections",
]


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
        providers = list(providers or ["CPUExecutionProvider"])
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types (InvalidProtobuf, Fail, ...)
            raise InputFileError(
                f"{self.path}: not an ONNX file onnxruntime can run ({str(e).splitlines()[0][:200]}); the onnx "
                "backend needs a file written by mgdet export (a .pth checkpoint runs with --backend torch)"
            ) from None
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
    """The torch twin of :class:`OnnxDetector`: :meth:`Detector.dense_predictions` (what is exported), then the
    same numpy post-processing. ``channels_last`` converts the model and inputs; ``inference_mode`` is always on."""

    def __init__(
        self,
        detector: Any,
        params: PostProcessParams | None = None,
        class_names: Sequence[str] | None = None,
        device: str = "cpu",
        channels_last: bool = False,
    ) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.model = detector.to(self.device).eval()
        self.channels_last = channels_last
        if channels_last:
            self.model.to(memory_format=torch.channels_last)
        size = detector.input_size
        self.input_hw = as_hw(size)
        self.params = params or PostProcessParams()
        self.class_names = list(class_names or [])

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        torch = self.torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device)  # [B, 3, H, W]
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            scores, boxes = self.model.dense_predictions(self.model(x))  # [B, A, C], [B, A, 4]
        return scores.float().cpu().numpy(), boxes.float().cpu().numpy()


# ------------------------------------------------------------------------------------------------ files
def shown_name(name: str) -> str:
    """``name`` as it can be printed: a byte of a file name that is not UTF-8 (kept by Python as a lone surrogate,
    which cannot be written to a UTF-8 terminal) shown as U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def detect_paths(
    backend: _Backend, paths: Sequence[Path], batch_size: int = 8, progress: bool = True, on_error: str = "raise"
) -> Iterator[tuple[Path, np.ndarray | None, dict[str, Any]]]:
    """Stream ``(path, image RGB, detections in original pixels)``, reading ``batch_size`` images at a time
    and passing the readable ones to ``backend.detect`` (any object with that method: the torch detect path
    uses it too); an unreadable image is raised (``on_error="raise"``) or yielded as
    ``(path, None, {"error": message})``."""
    from tqdm import tqdm

    from mgdet.data.image_io import read_images

    with tqdm(total=len(paths), desc="detect", unit="img", disable=not progress) as bar:
        for group in pixel_batches(paths, batch_size):
            chunk = read_images(group, on_error)
            good = [(p, im) for p, im, _ in chunk if im is not None]
            found = dict(zip([p for p, _ in good], backend.detect([im for _, im in good]))) if good else {}
            for p, im, message in chunk:
                yield (p, im, found[p]) if im is not None else (p, None, {"error": message})
                bar.update(1)


#: decoded pixels one detect batch may hold (64 MP: about 190 MB as RGB); a larger image goes alone
BATCH_PIXELS = 64_000_000


def pixel_batches(paths: Sequence[Path], batch_size: int, budget: int = BATCH_PIXELS) -> Iterator[list[Path]]:
    """``paths`` in order, in groups of at most ``batch_size`` whose pixel counts (from the headers) add up to at
    most ``budget``, so that a batch of huge images does not exhaust the memory; an image over the budget goes in
    a group of its own. An unreadable header counts as 0 pixels (reading it fails later, as it would anyway)."""
    from mgdet.data.errors import DatasetError
    from mgdet.data.image_io import header_info

    group: list[Path] = []
    total = 0
    for path in paths:
        try:
            h, w, _ = header_info(path)
            pixels = h * w
        except DatasetError:
            pixels = 0
        if group and (len(group) >= batch_size or total + pixels > budget):
            yield group
            group, total = [], 0
        group.append(path)
        total += pixels
    if group:
        yield group


def write_detections(
    stream: Iterator[tuple[Path, np.ndarray | None, dict[str, Any]]],
    out: Path,
    class_names: Sequence[str] | None,
    show_thresh: float = 0.3,
    file_names: dict[Path, str] | None = None,
) -> list[tuple[str, int, str]]:
    """Consume a detection stream: annotated ``out/<stem>.jpg`` per image (``file_names[path]`` when given:
    distinct names for colliding stems), ``out/detections.json`` (the format of ``mgdet detect``; each record
    names its annotated copy) and ``out/detections_coco.json`` (COCO results list). Returns table rows
    ``(image, boxes >= show_thresh, top score)``. An image the stream yields without pixels (unreadable,
    skipped) gets a record ``{"file", "error"}`` instead. The two json files are written even when the stream
    stops with an error: they hold the images processed until then."""
    from mgdet.utils.draw import draw_detections

    out.mkdir(parents=True, exist_ok=True)
    names = list(class_names or [])
    records, coco, counts = [], [], []
    try:
        for image_id, (path, image, d) in enumerate(stream):
            if image is None:  # unreadable, skipped (on_error="skip"): recorded with its error
                records.append({"file": str(path), "error": str(d.get("error", "unreadable"))})
                counts.append((shown_name(path.name), "-", "unreadable"))
                continue
            keep = d["scores"] >= show_thresh
            drawn = draw_detections(image, d["boxes"][keep], d["scores"][keep], d["labels"][keep], names)
            annotated = (file_names or {}).get(path, f"{path.stem}.jpg")
            # encoded here and written by Python: OpenCV's own writer crashes on a non-UTF-8 byte in the name
            ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
            if ok:
                (out / annotated).write_bytes(jpg.tobytes())
            records.append({
                "file": str(path),
                "annotated": annotated,
                "detections": [
                    {"bbox_xyxy": [round(float(v), 2) for v in b], "score": round(float(s), 4), "label": int(lb),
                     "class": names[int(lb)] if int(lb) < len(names) else str(int(lb))}
                    for b, s, lb in zip(d["boxes"], d["scores"], d["labels"])
                ],
            })  # fmt: skip
            coco.extend(coco_results([{**d, "image_id": image_id, "file_name": path.name}], decimals=(2, 4)))
            top = float(d["scores"].max()) if len(d["scores"]) else 0.0
            counts.append((shown_name(path.name), int(keep.sum()), f"{top:.3f}"))
    finally:
        (out / "detections.json").write_text(json.dumps(records, indent=1))
        (out / "detections_coco.json").write_text(json.dumps(coco))
    return counts
