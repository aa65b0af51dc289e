"""ONNX export: backbone + neck + head + box decoding in one graph; NMS stays outside.

The exported graph maps ``images [B, 3, S, S]`` (float32 RGB in [0, 1]; the ImageNet normalization is
inside the graph, exactly as in :meth:`Detector.forward`) to

* ``scores [B, A, C]``: sigmoid class probabilities (FCOS: ``sqrt(sigmoid(cls) * sigmoid(centerness))``),
* ``boxes  [B, A, 4]``: decoded ``xyxy`` boxes in S-pixels, clipped to the image,

i.e. everything :meth:`Detector.predict` does before its top-k. Anchors (FCOS points) are constants of
the graph, so the spatial size is fixed at export time; only the batch axis may be dynamic.

**Why NMS is not in the graph.** ONNX ``NonMaxSuppression`` is not a drop-in for :mod:`mgdet.nms`: its
score threshold and per-class box cap are applied per class before suppression (mgdet takes a top-k over
all (anchor, class) pairs first), its IoU test and tie order are runtime-defined, and a class-aware
top-k + cap after it needs several more data-dependent ops (TopK, GatherND, Concat) whose output shapes
vary per image. Instead the file stops at dense scores/boxes and every backend shares one documented
numpy post-step, :func:`mgdet.postprocess.postprocess` (threshold, per-image top-k, exact class-aware NMS
equal to :func:`mgdet.nms.batched_nms`, ``max_det``, rescale). The graph stays a plain static-shape
convolutional network that any ONNX runtime optimizes well, and ONNX and PyTorch give the same kept set.

The post-processing parameters and class names travel with the file as ``metadata_props``:
``mgdet.class_names`` (JSON list), ``mgdet.postprocess`` (JSON dict: score_thresh, nms_iou, max_det,
pre_nms_topk), ``mgdet.input_size`` (JSON ``[H, W]``), ``mgdet.model_config`` (JSON), ``mgdet.version``,
``mgdet.outputs`` (a one-line description of the two outputs).

The TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``) is used: it works offline and
needs no ``onnxscript``; the dynamo exporter is the default in recent torch releases but needs it.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import mgdet
from mgdet.catalog import as_hw
from mgdet.postprocess import PostProcessParams

#: ONNX opset written by default (supported by onnxruntime >= 1.14).
DEFAULT_OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAMES = ("scores", "boxes")
OUTPUTS_DOC = (
    "scores [B,A,C] float32 sigmoid (FCOS: sqrt(cls*centerness)); "
    "boxes [B,A,4] float32 xyxy input pixels, clipped; input images [B,3,H,W] float32 RGB 0..1"
)


class ScoresAndBoxes(nn.Module):
    """A detector plus its dense decoding: ``images [B, 3, H, W]`` -> ``(scores [B, A, C], boxes [B, A, 4])``.

    ``detector(images)`` then :meth:`Detector.dense_predictions`, the part of :meth:`Detector.predict` before
    its top-k, so the ONNX graph and the torch backend of :mod:`mgdet.deploy` compute the same tensors.
    """

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        return self.detector.dense_predictions(self.detector(images))  # [B, A, C], [B, A, 4]


def export_onnx(
    detector: nn.Module,
    path: str | Path,
    input_size: int | tuple[int, int] | None = None,
    class_names: list[str] | None = None,
    params: PostProcessParams | None = None,
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Export ``detector`` (not modified: a copy is traced) to ``path`` and verify it with ``onnx.checker``.

    ``input_size`` (S or (H, W)) defaults to ``detector.input_size``; ``dynamic_batch`` makes axis 0 of
    the input and both outputs symbolic (``batch``), otherwise the file is fixed to batch 1.
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = as_hw(input_size if input_size is not None else detector.input_size)
    det = copy.deepcopy(detector).float().cpu().eval()
    model = ScoresAndBoxes(det).eval()  # eval() on the wrapper: the exporter restores the wrapper's mode
    example = torch.rand(2 if dynamic_batch else 1, 3, h, w)  # batch 2: no size-1 specialisation in the trace
    with torch.no_grad():
        model(example)  # builds the anchors for this size before tracing
    axes = {n: {0: "batch"} for n in (INPUT_NAME, *OUTPUT_NAMES)} if dynamic_batch else None
    buffer = io.BytesIO()  # in memory: metadata is added before the single write (models < 2 GB)
    with warnings.catch_warnings(), torch.no_grad():
        # the tracer warns about python ints read from shapes (feature sizes): they are constants by design
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes, opset_version=opset, do_constant_folding=True,
        )  # fmt: skip
    proto = onnx.load_model_from_string(buffer.getvalue())
    meta = {
        "mgdet.class_names": json.dumps(list(class_names) if class_names else []),
        "mgdet.postprocess": json.dumps(asdict(params or PostProcessParams())),
        "mgdet.input_size": json.dumps([h, w]),
        "mgdet.model_config": json.dumps(det.config, default=str),
        "mgdet.version": mgdet.__version__,
        "mgdet.outputs": OUTPUTS_DOC,
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v
    proto.producer_name = "mgdet"
    onnx.checker.check_model(proto, full_check=True)
    onnx.save(proto, str(path))
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``mgdet.*`` metadata of an exported file, JSON values decoded (keys without the prefix)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    out: dict[str, Any] = {}
    for p in proto.metadata_props:
        if p.key.startswith("mgdet."):
            key = p.key.removeprefix("mgdet.")
            try:
                out[key] = json.loads(p.value)
            except json.JSONDecodeError:
                out[key] = p.value
    return out


def export_checkpoint(
    checkpoint: str | Path,
    path: str | Path,
    input_size: int | None = None,
    dynamic_batch: bool = True,
    opset: int = DEFAULT_OPSET,
) -> tuple[Path, dict[str, Any]]:
    """Load an mgdet checkpoint (EMA weights when present) and export it; returns (path, summary dict).

    Class names come from the checkpoint's ``class_names`` (else its run config), post-processing
    parameters from the run config's ``eval`` section (else the paper's defaults).
    """
    from mgdet.engine.checkpoint import load_checkpoint, load_detector

    det, run_cfg = load_detector(checkpoint)
    names = list(load_checkpoint(checkpoint).get("class_names") or [])
    if not names:
        names = list((run_cfg.get("data") or {}).get("class_names") or [])
    params = PostProcessParams.from_dict(run_cfg.get("eval"))
    size = input_size if input_size is not None else det.input_size
    out = export_onnx(det, path, size, names, params, dynamic_batch=dynamic_batch, opset=opset)
    import onnx

    h, w = as_hw(size)
    dims = onnx.load(str(out)).graph.output[0].type.tensor_type.shape.dim  # scores [B, A, C]
    a, c = dims[1].dim_value, dims[2].dim_value
    summary = {
        "onnx": str(out),
        "model": f"{det.config['name']}-{det.config['backbone']}",
        "input": f"images [{'B' if dynamic_batch else 1},3,{h},{w}]",
        "outputs": f"scores [B,{a},{c}], boxes [B,{a},4]",
        "classes": len(names),
        "opset": opset,
        "postprocess": asdict(params),
        "size_mb": round(out.stat().st_size / 2**20, 2),
    }
    return out, summary
