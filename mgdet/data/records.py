"""Parsed annotations shared by every loader: one :class:`ImageRecord` per image, box sanitizing,
and :class:`RecordDataset`, the base that turns records into ``(image, target)`` samples.

Repair policy (counted in ``dataset.repairs``, a Counter):
- ``box_clipped``: a box that sticks out of the image by at most ``CLIP_TOLERANCE`` of the image side
  (and at least 2 px are always tolerated) is clipped to the image. Further out is an error.
- ``zero_area_box_dropped``: a box with zero width or height (also after clipping) is dropped.
Everything else that is wrong is a :class:`~mgdet.data.errors.Problem`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import IMAGE, DatasetError, Problem, raise_first
from .image_io import read_image

#: How far (fraction of the image side) a box may stick out of the image and still be clipped.
CLIP_TOLERANCE = 0.1
#: Absolute slack (pixels) always tolerated when clipping.
CLIP_TOLERANCE_PX = 2.0
ON_ERROR = ("raise", "skip")
_NUMERIC_STEM = re.compile(r"^(\d+)(?:_(\d+))?$")


@dataclass
class ImageRecord:
    """Everything known about one image before decoding it."""

    key: str  # unique name inside the dataset (file stem or COCO id), used in problem reports
    image_id: int
    path: Path
    height: int
    width: int
    boxes: np.ndarray  # [N, 4] float32 xyxy, 0-based original pixels
    labels: np.ndarray  # [N] int64, 0-based
    ignore: np.ndarray  # [N] bool (VOC difficult, COCO crowd)
    annotation: str = ""  # file the annotation came from (for messages)

    def target(self) -> dict:
        """The target dict of the data contract (arrays copied so callers may modify them)."""
        return {
            "boxes": self.boxes.copy(),
            "labels": self.labels.copy(),
            "ignore": self.ignore.copy(),
            "image_id": self.image_id,
            "size": (self.height, self.width),
        }


def empty_record(key: str, image_id: int, path: Path, height: int, width: int, annotation: str) -> ImageRecord:
    """A record with no objects."""
    return ImageRecord(
        key,
        image_id,
        path,
        height,
        width,
        np.zeros((0, 4), np.float32),
        np.zeros((0,), np.int64),
        np.zeros((0,), bool),
        annotation,
    )


def image_id_from_stem(stem: str) -> int | None:
    """``"000005"`` -> 5, ``"2008_000123"`` -> 2008000123 (VOC naming); ``None`` if not numeric."""
    m = _NUMERIC_STEM.match(stem)
    if m is None:
        return None
    return int(m.group(1) + (m.group(2) or ""))


def assign_image_ids(stems: list[str]) -> list[int]:
    """Integer ids for file stems: the numeric value when every stem is numeric and ids are unique,
    else the position in ``stems`` (stable for a fixed split file / sorted folder)."""
    ids = [image_id_from_stem(s) for s in stems]
    if all(i is not None for i in ids) and len(set(ids)) == len(ids):
        return [int(i) for i in ids]  # type: ignore[arg-type]
    return list(range(len(stems)))


def sanitize_boxes(
    boxes: np.ndarray,  # [N, 4] float64 xyxy original pixels
    height: int,
    width: int,
    file: str,
    fields: list[str],  # [N] field names for messages, e.g. "object[3]/bndbox"
    key: str,
    repairs: Counter,
) -> tuple[np.ndarray, list[Problem]]:
    """Validate and repair boxes against the image size, vectorized over boxes.

    Returns ``(keep [N] bool, problems)``; clipping is done in place on ``boxes``. Boxes with
    problems are not kept.
    """
    n = len(boxes)
    problems: list[Problem] = []
    if n == 0:
        return np.zeros((0,), bool), problems
    finite = np.isfinite(boxes).all(1)
    inverted = finite & ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    tol_x = max(CLIP_TOLERANCE_PX, CLIP_TOLERANCE * width)
    tol_y = max(CLIP_TOLERANCE_PX, CLIP_TOLERANCE * height)
    lo = np.array([-tol_x, -tol_y, -tol_x, -tol_y])
    hi = np.array([width + tol_x, height + tol_y, width + tol_x, height + tol_y])
    with np.errstate(invalid="ignore"):
        outside = finite & ~inverted & ((boxes < lo) | (boxes > hi)).any(1)
    for i in np.flatnonzero(~finite):
        problems.append(Problem(file, "box coordinates must be finite numbers", fields[i], key=key))
    for i in np.flatnonzero(inverted):
        x1, y1, x2, y2 = boxes[i]
        problems.append(
            Problem(
                file,
                f"box corners are inverted (x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}); "
                "expected x2 >= x1 and y2 >= y1",
                fields[i],
                key=key,
            )
        )
    for i in np.flatnonzero(outside):
        x1, y1, x2, y2 = boxes[i]
        problems.append(
            Problem(
                file,
                f"box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) (0-based xyxy) lies outside the {width}x{height} image "
                f"(more than {CLIP_TOLERANCE:.0%} beyond its border)",
                fields[i],
                key=key,
            )
        )
    ok = finite & ~inverted & ~outside
    clipped = boxes.copy()
    np.clip(clipped[:, 0::2], 0, width, out=clipped[:, 0::2])
    np.clip(clipped[:, 1::2], 0, height, out=clipped[:, 1::2])
    changed = ok & (clipped != boxes).any(1)
    boxes[ok] = clipped[ok]
    zero = ok & ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
    repairs["box_clipped"] += int((changed & ~zero).sum())
    repairs["zero_area_box_dropped"] += int(zero.sum())
    return ok & ~zero, problems


def finalize(
    records: list[ImageRecord], problems: list[Problem], on_error: str
) -> tuple[list[ImageRecord], list[Problem]]:
    """Apply the ``on_error`` policy: raise the first problem, or drop every image that has one."""
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if on_error == "raise":
        raise_first(problems)
    bad = {p.key for p in problems if p.key is not None}
    return [r for r in records if r.key not in bad], problems


class RecordDataset(torch.utils.data.Dataset):
    """Base for the loaders: holds parsed records; decodes images lazily in ``__getitem__``.

    Attributes: ``class_names`` (tuple), ``records`` (list[ImageRecord]), ``repairs`` (Counter of
    automatic repairs), ``problems`` (list[Problem] found at construction; non-empty only with
    ``on_error="skip"``), ``skipped`` (keys of the images that were dropped).
    """

    def __init__(
        self,
        class_names: tuple[str, ...],
        records: list[ImageRecord],
        problems: list[Problem],
        repairs: Counter,
        on_error: str,
    ) -> None:
        kept, problems = finalize(records, problems, on_error)
        self.class_names = tuple(class_names)
        self.records = kept
        self.problems = problems
        self.repairs = repairs
        self.skipped = sorted({p.key for p in problems if p.key is not None})
        self.on_error = on_error  # also what DetectionDataset does with an image that fails to decode later

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[np.ndarray, dict]:
        rec = self.records[index]
        image = read_image(rec.path, expected_hw=(rec.height, rec.width))  # [H, W, 3] uint8 RGB
        return image, rec.target()

    def image_info(self, index: int) -> dict:
        """``dict(image_id, file, height, width)`` without decoding the image."""
        rec = self.records[index]
        return {"image_id": rec.image_id, "file": str(rec.path), "height": rec.height, "width": rec.width}

    def target(self, index: int) -> dict:
        """The annotation of one image without decoding it."""
        return self.records[index].target()

    def coco_gt(self) -> list[dict]:
        """Per-image GT for ``mgdet.evaluation``: image_id, boxes, labels, ignore, height, width."""
        return [
            {
                "image_id": r.image_id,
                "boxes": r.boxes.copy(),
                "labels": r.labels.copy(),
                "ignore": r.ignore.copy(),
                "height": r.height,
                "width": r.width,
            }
            for r in self.records
        ]


class ConcatRecordDataset(RecordDataset):
    """Several loaders with the same classes seen as one (e.g. VOC 2007 + 2012 trainval)."""

    def __init__(self, parts: list[RecordDataset]) -> None:
        if not parts:
            raise ValueError("ConcatRecordDataset needs at least one dataset")
        names = parts[0].class_names
        for p in parts[1:]:
            if p.class_names != names:
                raise ValueError("datasets to concatenate must have the same class_names")
        records = [r for p in parts for r in p.records]
        ids = [r.image_id for r in records]
        if len(set(ids)) != len(ids):
            dup = next(i for i, c in Counter(ids).items() if c > 1)
            raise DatasetError(f"image_id {dup} occurs in more than one of the concatenated datasets")
        repairs: Counter = Counter()
        for p in parts:
            repairs.update(p.repairs)
        super().__init__(names, records, [], repairs, "skip")
        self.problems = [q for p in parts for q in p.problems]
        self.skipped = [s for p in parts for s in p.skipped]


def missing_image_problem(path: Path, key: str) -> Problem | None:
    """A Problem when the image file of a record does not exist (cheap stat at construction)."""
    if path.is_file():
        return None
    return Problem(str(path), "image file not found", key=key, kind=IMAGE)
