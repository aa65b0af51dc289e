"""Pascal VOC loader (one year folder, or the project's benchmark which has the same layout).

Layout: ``ROOT/Annotations/<id>.xml``, ``ROOT/JPEGImages/<id>.jpg``, ``ROOT/ImageSets/Main/<split>.txt``.

Coordinates: VOC xml boxes are 1-based and inclusive (a box covering pixel columns 0..9 is written
``xmin=1, xmax=10``). We convert to 0-based xyxy pixels with exclusive far corner:
``(xmin - 1, ymin - 1, xmax, ymax)``, so width = ``xmax - xmin + 1`` pixels.

``difficult`` objects come back with ``ignore=True`` (training drops them, evaluation ignores them).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np

from .errors import DatasetError, Problem
from .image_io import image_size
from .records import (
    ConcatRecordDataset,
    ImageRecord,
    RecordDataset,
    assign_image_ids,
    missing_image_problem,
    sanitize_boxes,
)

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
_COORDS = ("xmin", "ymin", "xmax", "ymax")


class VOCDataset(RecordDataset):
    """VOC-layout dataset. All xml files are parsed and validated once, at construction.

    ``on_error="raise"`` raises the first problem as a DatasetError; ``"skip"`` drops the images with
    problems and keeps them in ``.problems`` / ``.skipped``. Image ids are the numeric file stems
    (``2008_000123`` -> 2008000123) when all stems are numeric, else the line index in the split file.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        class_names: tuple[str, ...] | list[str] = VOC_CLASSES,
        keep_difficult: bool = True,
        on_error: str = "raise",
        image_ext: str = ".jpg",
    ) -> None:
        self.root = Path(root)
        self.split = split
        stems = read_split(self.root / "ImageSets" / "Main" / f"{split}.txt")
        index = {name: i for i, name in enumerate(class_names)}
        repairs: Counter = Counter()
        records: list[ImageRecord] = []
        problems: list[Problem] = []
        for stem, image_id in zip(stems, assign_image_ids(stems)):
            image_path = self.root / "JPEGImages" / f"{stem}{image_ext}"
            missing = missing_image_problem(image_path, stem)
            if missing is not None:
                problems.append(missing)
            rec, found = parse_voc_xml(
                self.root / "Annotations" / f"{stem}.xml", index, image_path, image_id, stem, repairs
            )
            problems.extend(found)
            if rec is not None:
                if not keep_difficult:
                    keep = ~rec.ignore
                    rec.boxes, rec.labels, rec.ignore = rec.boxes[keep], rec.labels[keep], rec.ignore[keep]
                records.append(rec)
        super().__init__(tuple(class_names), records, problems, repairs, on_error)


def read_split(path: Path) -> list[str]:
    """Image stems listed in a VOC ``ImageSets/Main/<split>.txt`` (first token of each line)."""
    if not path.is_file():
        raise DatasetError("split file not found (expected ImageSets/Main/<split>.txt)", path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read split file ({exc})", path) from None
    stems = [ln.split()[0] for ln in lines if ln.strip()]
    seen: set[str] = set()
    for lineno, ln in enumerate(lines, 1):
        if not ln.strip():
            continue
        stem = ln.split()[0]
        if stem in seen:
            raise DatasetError(f"image {stem!r} is listed twice", path, line=lineno)
        seen.add(stem)
    return stems


def parse_voc_xml(
    xml_path: Path,
    class_index: dict[str, int],
    image_path: Path,
    image_id: int,
    key: str,
    repairs: Counter,
) -> tuple[ImageRecord | None, list[Problem]]:
    """Parse and validate one VOC annotation file, listing every problem found in it.

    Returns ``(record, problems)``; the record is ``None`` when the file is unusable.
    A missing ``<size>`` is repaired from the image header (counted as ``size_from_image``).
    """
    file = str(xml_path)
    if not xml_path.is_file():
        return None, [Problem(file, "annotation file not found", key=key)]
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        line = exc.position[0] if exc.position else None
        return None, [Problem(file, f"malformed XML ({exc})", line=line, key=key)]
    except OSError as exc:
        return None, [Problem(file, f"cannot read annotation ({exc})", key=key)]
    if root.tag != "annotation":
        return None, [Problem(file, f"root element is <{root.tag}>, expected <annotation>", key=key)]
    problems: list[Problem] = []

    size = _read_size(root, file, key, problems)
    if size is None and not problems:
        try:
            size = image_size(image_path)
            repairs["size_from_image"] += 1
        except DatasetError as exc:
            problems.append(Problem(file, f"no <size> and the image size is unknown ({exc.reason})", "size", key=key))
    if size is None:
        return None, problems
    height, width = size

    objects = root.findall("object")
    raw = np.zeros((len(objects), 4), np.float64)
    labels = np.zeros(len(objects), np.int64)
    difficult = np.zeros(len(objects), bool)
    usable = np.ones(len(objects), bool)
    fields = [f"object[{i}]/bndbox" for i in range(len(objects))]
    for i, obj in enumerate(objects):
        where = f"object[{i}]"
        n_before = len(problems)
        name = (obj.findtext("name") or "").strip()
        if not name:
            problems.append(Problem(file, "missing <name>", f"{where}/name", key=key))
        elif name not in class_index:
            problems.append(
                Problem(
                    file,
                    f"unknown class {name!r} (not in the {len(class_index)} class names)",
                    f"{where}/name",
                    key=key,
                )
            )
        else:
            labels[i] = class_index[name]
        diff_text = (obj.findtext("difficult") or "0").strip()
        if diff_text not in ("0", "1"):
            problems.append(Problem(file, f"expected 0 or 1, got {diff_text!r}", f"{where}/difficult", key=key))
        difficult[i] = diff_text == "1"
        bndbox = obj.find("bndbox")
        if bndbox is None:
            problems.append(Problem(file, "missing <bndbox>", f"{where}/bndbox", key=key))
        else:
            for j, tag in enumerate(_COORDS):
                value = _number(bndbox.findtext(tag), file, f"{where}/bndbox/{tag}", key, problems)
                if value is not None:
                    raw[i, j] = value
        usable[i] = len(problems) == n_before
    # Inclusive corners: xmax >= xmin is required (xmax == xmin is a 1-pixel-wide box).
    for i in np.flatnonzero(usable & ((raw[:, 2] < raw[:, 0]) | (raw[:, 3] < raw[:, 1]))):
        x1, y1, x2, y2 = raw[i]
        msg = f"xmax < xmin or ymax < ymin (xmin={x1:g}, ymin={y1:g}, xmax={x2:g}, ymax={y2:g})"
        problems.append(Problem(file, msg, fields[i], key=key))
        usable[i] = False
    # 1-based inclusive -> 0-based xyxy, exclusive far corner.
    boxes = raw - np.array([1.0, 1.0, 0.0, 0.0])
    sel = np.flatnonzero(usable)
    clipped = boxes[sel]  # [M, 4] copy; sanitize_boxes clips it in place
    keep, found = sanitize_boxes(clipped, height, width, file, [fields[i] for i in sel], key, repairs)
    problems.extend(found)
    sel_keep = sel[keep]
    record = ImageRecord(
        key,
        image_id,
        image_path,
        height,
        width,
        clipped[keep].astype(np.float32).reshape(-1, 4),
        labels[sel_keep],
        difficult[sel_keep],
        file,
    )
    return record, problems


def _read_size(root: ET.Element, file: str, key: str, problems: list[Problem]) -> tuple[int, int] | None:
    """``(height, width)`` from ``<size>``; None when absent (problems appended when invalid)."""
    size = root.find("size")
    if size is None:
        return None
    out = []
    for tag in ("height", "width"):
        value = _number(size.findtext(tag), file, f"size/{tag}", key, problems)
        if value is None:
            return None
        if value <= 0 or value != int(value):
            problems.append(Problem(file, f"expected a positive integer, got {value:g}", f"size/{tag}", key=key))
            return None
        out.append(int(value))
    return out[0], out[1]


def _number(text: str | None, file: str, field: str, key: str, problems: list[Problem]) -> float | None:
    """Parse a non-negative finite number from an xml field, appending a Problem when it is not one."""
    if text is None or not text.strip():
        problems.append(Problem(file, "missing value", field, key=key))
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append(Problem(file, f"expected a number, got {text.strip()[:40]!r}", field, key=key))
        return None
    if not np.isfinite(value):
        problems.append(Problem(file, f"expected a finite number, got {text.strip()!r}", field, key=key))
        return None
    if value < 0:
        problems.append(Problem(file, f"expected a non-negative number, got {value:g}", field, key=key))
        return None
    return value


def voc_datasets(
    devkit_root: str | Path,
    years: str = "07+12",
    split: str = "trainval",
    class_names: tuple[str, ...] | list[str] = VOC_CLASSES,
    **kwargs,
) -> RecordDataset:
    """VOC years from a ``VOCdevkit`` folder concatenated, e.g. ``("07+12", "trainval")`` for the
    paper's training set and ``("07", "test")`` for its test set. ``kwargs`` go to VOCDataset."""
    parts = []
    for year in years.split("+"):
        year = year.strip()
        full = year if len(year) == 4 else f"20{year}"
        parts.append(VOCDataset(Path(devkit_root) / f"VOC{full}", split, class_names, **kwargs))
    return parts[0] if len(parts) == 1 else ConcatRecordDataset(parts)
