"""YOLO-txt loader: one ``<stem>.txt`` per image with rows ``class cx cy w h`` (normalized to 0..1).

Images are every file with an image extension under ``image_dir`` (recursively); the label file is
the same relative path under ``label_dir`` with a ``.txt`` suffix. A missing or empty label file means
an image without objects. Image sizes are read from the image headers at construction (no decoding),
since the normalized boxes need them. YOLO has no crowd/difficult flag, so ``ignore`` is all False.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from .errors import IMAGE, DatasetError, Problem
from .image_io import IMAGE_EXTENSIONS, image_size
from .records import ImageRecord, RecordDataset, assign_image_ids, empty_record, sanitize_boxes


class YoloDataset(RecordDataset):
    """Dataset from a YOLO image folder + label folder; ``class_names`` index the class column."""

    def __init__(
        self,
        image_dir: str | Path,
        label_dir: str | Path,
        class_names: tuple[str, ...] | list[str],
        on_error: str = "raise",
    ) -> None:
        self.image_dir = Path(image_dir)
        self.label_dir = Path(label_dir)
        if not self.image_dir.is_dir():
            raise DatasetError("image folder not found", self.image_dir)
        paths = sorted(p for p in self.image_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        rel = [p.relative_to(self.image_dir).with_suffix("") for p in paths]
        keys = [r.as_posix() for r in rel]
        repairs: Counter = Counter()
        records: list[ImageRecord] = []
        problems: list[Problem] = []
        for path, key, image_id in zip(paths, keys, assign_image_ids([r.name for r in rel])):
            try:
                height, width = image_size(path)
            except DatasetError as exc:
                problems.append(Problem(str(path), exc.reason, key=key, kind=IMAGE))
                continue
            label_file = self.label_dir / f"{key}.txt"
            rec, found = parse_yolo_txt(label_file, len(class_names), path, image_id, key, height, width, repairs)
            problems.extend(found)
            records.append(rec)
        if self.label_dir.is_dir():
            orphans = {p.relative_to(self.label_dir).with_suffix("").as_posix() for p in self.label_dir.rglob("*.txt")}
            for k in sorted(orphans - set(keys)):
                problems.append(Problem(str(self.label_dir / f"{k}.txt"), "label file has no matching image"))
        super().__init__(tuple(class_names), records, problems, repairs, on_error)


def parse_yolo_txt(
    label_file: Path,
    num_classes: int,
    image_path: Path,
    image_id: int,
    key: str,
    height: int,
    width: int,
    repairs: Counter,
) -> tuple[ImageRecord, list[Problem]]:
    """Parse and validate one YOLO label file (every bad row is reported with its line number)."""
    file = str(label_file)
    rec = empty_record(key, image_id, image_path, height, width, file)
    if not label_file.is_file():
        return rec, []
    try:
        lines = label_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        return rec, [Problem(file, f"cannot read label file ({exc})", key=key)]
    problems: list[Problem] = []
    rows: list[list[float]] = []
    row_lines: list[int] = []
    classes: list[int] = []
    for lineno, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            problems.append(
                Problem(file, f"expected 5 fields 'class cx cy w h', got {len(parts)}", line=lineno, key=key)
            )
            continue
        try:
            cls_f = float(parts[0])
            vals = [float(v) for v in parts[1:]]
        except ValueError:
            problems.append(Problem(file, f"expected numbers, got {line.strip()[:60]!r}", line=lineno, key=key))
            continue
        if not cls_f.is_integer() or not 0 <= cls_f < num_classes:
            problems.append(
                Problem(
                    file,
                    f"class must be an integer in [0, {num_classes - 1}], got {parts[0]!r}",
                    "class",
                    lineno,
                    key,
                )
            )
            continue
        bad = [n for n, v in zip(("cx", "cy", "w", "h"), vals) if not (0.0 <= v <= 1.0)]
        if bad:
            problems.append(
                Problem(
                    file,
                    f"{', '.join(bad)} must be normalized to [0, 1], got {parts[1:]}",
                    ",".join(bad),
                    lineno,
                    key,
                )
            )
            continue
        rows.append(vals)
        row_lines.append(lineno)
        classes.append(int(cls_f))
    cxcywh = np.array(rows, np.float64).reshape(-1, 4) * np.array([width, height, width, height])
    boxes = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)
    keep, found = sanitize_boxes(boxes, height, width, file, [f"line {n}" for n in row_lines], key, repairs)
    problems.extend(found)
    rec.boxes = boxes[keep].astype(np.float32).reshape(-1, 4)
    rec.labels = np.array(classes, np.int64).reshape(-1)[keep]
    rec.ignore = np.zeros(len(rec.labels), bool)
    return rec, problems
