"""Datasets (VOC, COCO, YOLO), validation, SSD-style transforms and batching.

Every loader returns ``(image uint8 [H,W,3] RGB, target)`` with ``target = dict(boxes float32 [N,4] xyxy
original pixels, labels int64 [N] 0-based, ignore bool [N], image_id int, size (h, w))``.
"""

import cv2 as _cv2

from .coco import CocoDataset
from .collate import (
    DetectionBatch,
    DetectionDataset,
    EpochRandomSampler,
    collate_detections,
    make_loader,
    seed_worker,
    set_loader_epoch,
)
from .errors import DatasetError, Problem
from .image_io import probe_image, read_image
from .records import ConcatRecordDataset, ImageRecord, RecordDataset
from .transforms import IMAGENET_MEAN, EvalTransform, TrainTransform
from .validate import CheckReport, check_dataset, open_dataset
from .voc import VOC_CLASSES, VOCDataset, voc_datasets
from .yolo import YoloDataset

# OpenCV's thread pool does not survive fork(): a DataLoader worker forked after the parent used it (e.g.
# after generating the benchmark in-process) deadlocks in its first cv2 call. One cv2 thread per process
# keeps workers fork-safe; data-loading parallelism comes from DataLoader workers instead.
_cv2.setNumThreads(1)

__all__ = [
    "IMAGENET_MEAN",
    "VOC_CLASSES",
    "CheckReport",
    "CocoDataset",
    "ConcatRecordDataset",
    "DatasetError",
    "DetectionBatch",
    "DetectionDataset",
    "EpochRandomSampler",
    "EvalTransform",
    "ImageRecord",
    "Problem",
    "RecordDataset",
    "TrainTransform",
    "VOCDataset",
    "YoloDataset",
    "check_dataset",
    "collate_detections",
    "make_loader",
    "open_dataset",
    "probe_image",
    "read_image",
    "seed_worker",
    "set_loader_epoch",
    "voc_datasets",
]
