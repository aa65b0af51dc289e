"""Running a detector over a dataset (evaluation) or over image files (detection)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from mgdet.data import CocoDataset, DetectionDataset, EvalTransform, collate_detections
from mgdet.data.collate import FailedSample
from mgdet.engine.config import EvalConfig
from mgdet.evaluation import EvalResult, evaluate, misaligned_detections
from mgdet.evaluation.misalignment import kept_count

#: Detections below this score are not counted by the misalignment rate.
MISALIGN_SCORE = 0.05


def _to_original(det: dict[str, torch.Tensor], scale: tuple[float, float], image_id: int) -> dict[str, Any]:
    """Boxes from network-input pixels back to original-image pixels."""
    sy, sx = scale
    boxes = det["boxes"].float().cpu().numpy() / np.array([sx, sy, sx, sy], np.float32)
    return {
        "image_id": image_id,
        "boxes": boxes,
        "scores": det["scores"].float().cpu().numpy(),
        "labels": det["labels"].cpu().numpy(),
    }


def same_backbone(dets: Sequence[torch.nn.Module]) -> bool:
    """True when every detector has the same backbone weights, input normalisation and memory format (e.g. zoo
    detectors, which all read the same frozen ImageNet file): their backbone features are then identical."""
    first = dets[0]
    ref = first.backbone.state_dict()
    for det in dets[1:]:
        if type(det.backbone) is not type(first.backbone) or det.channels_last != first.channels_last:
            return False
        if repr(det.backbone) != repr(first.backbone):  # same structure (layers and their settings)
            return False
        if not (torch.equal(det.mean, first.mean) and torch.equal(det.std, first.std)):
            return False
        other = det.backbone.state_dict()
        if other.keys() != ref.keys() or not all(torch.equal(other[k], v) for k, v in ref.items()):
            return False
    return True


@torch.no_grad()
def run_dataset_many(
    dets: Sequence[torch.nn.Module],
    dataset,
    ecfg: EvalConfig,
    device: torch.device,
    num_workers: int = 0,
    progress: bool = True,
    with_pre_nms: bool = False,
) -> tuple[tuple[list[list[dict]], list[list[dict]]], list[FailedSample]]:
    """Detections (original pixels) of several detectors in one pass over the images of ``dataset`` (decoded
    once): per detector the kept detections and optionally the pre-NMS candidates, and the images that failed to
    decode (skipped under ``data.on_error=skip``). When the detectors share their backbone
    (:func:`same_backbone`), its features are computed once per batch: the same numbers, less time."""
    sizes = {str(det.input_size) for det in dets}
    if len(sizes) > 1:
        raise ValueError(f"detectors evaluated in one pass need the same input size, got {sorted(sizes)}")
    for det in dets:
        det.eval()
    shared = len(dets) > 1 and same_backbone(dets)
    ds = DetectionDataset(dataset, EvalTransform(dets[0].input_size), train=False)
    loader = DataLoader(ds, batch_size=ecfg.batch_size, shuffle=False, num_workers=num_workers,
                        collate_fn=collate_detections)  # fmt: skip
    dets_out: list[list[dict]] = [[] for _ in dets]
    pre_out: list[list[dict]] = [[] for _ in dets]
    failed: list[FailedSample] = []
    for batch in tqdm(loader, desc="eval", unit="batch", disable=not progress, leave=False):
        failed += batch.failed
        if len(batch) == 0:
            continue
        images = batch.images.to(device)
        hw = (int(images.shape[-2]), int(images.shape[-1]))
        features = dets[0].backbone_features(images) if shared else None
        for j, det in enumerate(dets):
            out = det.forward_features(features, hw) if shared else det(images)
            kept = det.predict(out, ecfg.score_thresh, ecfg.nms_iou, ecfg.max_det, ecfg.pre_nms_topk)
            raw = det.candidates(out, MISALIGN_SCORE, ecfg.pre_nms_topk) if with_pre_nms else None
            for i, meta in enumerate(batch.metas):
                dets_out[j].append(_to_original(kept[i], meta["scale"], meta["image_id"]))
                if raw is not None:
                    pre_out[j].append(_to_original(raw[i], meta["scale"], meta["image_id"]))
    return (dets_out, pre_out), failed


def evaluate_model(
    det: torch.nn.Module,
    dataset,
    ecfg: EvalConfig,
    device: torch.device,
    num_workers: int = 0,
    progress: bool = True,
) -> EvalResult:
    """COCO + VOC metrics (and the misalignment rate, in ``metrics["misalign"]``) of ``det`` on ``dataset``."""
    return evaluate_models([det], dataset, ecfg, device, num_workers, progress)[0]


def evaluate_models(
    dets: Sequence[torch.nn.Module],
    dataset,
    ecfg: EvalConfig,
    device: torch.device,
    num_workers: int = 0,
    progress: bool = True,
) -> list[EvalResult]:
    """:func:`evaluate_model` of each detector, in one pass over the images (see :func:`run_dataset_many`)."""
    (all_dets, all_pre), failed = run_dataset_many(dets, dataset, ecfg, device, num_workers, progress, True)
    gone = {f.image_id for f in failed}  # images that failed to decode are left out of the GT as well
    gts = [g for g in dataset.coco_gt() if g["image_id"] not in gone]
    # COCO data: official crowd semantics for iscrowd boxes; VOC/YOLO: "difficult" = neither TP nor FP
    ignore_mode = "crowd" if isinstance(dataset, CocoDataset) else "difficult"
    results = []
    for dets_j, pre_j in zip(all_dets, all_pre):
        result = evaluate(gts, dets_j, list(dataset.class_names), ignore_mode=ignore_mode)
        result.misaligned = misaligned_detections(gts, pre_j, dets_j, score_thresh=MISALIGN_SCORE)
        kept = kept_count(dets_j, MISALIGN_SCORE)
        result.metrics["misalign"] = len(result.misaligned) / kept if kept else 0.0
        result.skipped_images = [f.message for f in failed]
        results.append(result)
    return results


def iter_images(paths: Sequence[str | Path]) -> Iterator[Path]:
    """Expand files and folders (recursively) into image paths, sorted, de-duplicated."""
    exts = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
    seen = set()
    for p in map(Path, paths):
        items = sorted(q for q in p.rglob("*") if q.suffix.lower() in exts and not q.is_dir()) if p.is_dir() else [p]
        for q in items:
            if q not in seen:
                seen.add(q)
                yield q


def collect_images(paths: Sequence[str | Path]) -> list[Path]:
    """:func:`iter_images` as a list; FileNotFoundError (a clear CLI error) when a given path is missing or
    nothing was found. Entries that cannot be read (a pipe or socket named like an image) are kept: reading
    them fails like any unreadable image (an error, or skipped and recorded with ``--on-error skip``)."""
    missing = [p for p in map(Path, paths) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"image not found: {missing[0]}")
    found = list(iter_images(paths))
    if not found:
        raise FileNotFoundError("no images found in " + " ".join(map(str, paths)))
    return found


def detect_images(
    det: torch.nn.Module,
    paths: Sequence[Path],
    ecfg: EvalConfig,
    device: torch.device,
    batch_size: int = 8,
    progress: bool = True,
    on_error: str = "raise",
) -> Iterator[tuple[Path, np.ndarray | None, dict[str, Any]]]:
    """Yield ``(path, image RGB, detections in original pixels)`` for each image, batched, in order.

    An unreadable image stops the stream with a :class:`DatasetError` naming it (``on_error="raise"``) or
    is yielded as ``(path, None, {"error": message})`` (``"skip"``): the reading and batching of
    :func:`mgdet.deploy.detect_paths`, with ``det.predict`` as the backend.
    """
    from mgdet.deploy import detect_paths

    det.eval()
    tf = EvalTransform(det.input_size)

    class _Predict:  # the backend interface of detect_paths: RGB images -> detections in original pixels
        @torch.no_grad()
        def detect(self, images: list[np.ndarray]) -> list[dict[str, Any]]:
            tensors = [tf(im, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))[0] for im in images]
            out = det(torch.stack(tensors).to(device))
            preds = det.predict(out, ecfg.score_thresh, ecfg.nms_iou, ecfg.max_det, ecfg.pre_nms_topk)
            return [_to_original(pr, (t.shape[1] / im.shape[0], t.shape[2] / im.shape[1]), 0)
                    for pr, t, im in zip(preds, tensors, images)]  # fmt: skip

    return detect_paths(_Predict(), paths, batch_size=batch_size, progress=progress, on_error=on_error)
