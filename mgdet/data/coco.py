"""COCO-json loader (read with the stdlib ``json`` module, no pycocotools).

- Category ids are mapped to contiguous 0-based labels in sorted id order (or to the position of the
  category name in ``class_names`` when given).
- ``bbox`` ``[x, y, w, h]`` becomes xyxy ``[x, y, x + w, y + h]``; ``iscrowd=1`` boxes come back with
  ``ignore=True``; images without annotations are kept.
- Structural problems of the file (not json, missing ``images``/``categories``, wrong types) are
  always raised; per-image/annotation problems follow ``on_error``. Annotations that point to an image
  id that does not exist are reported (and dropped with ``on_error="skip"``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np

from .errors import DatasetError, Problem
from .records import ImageRecord, RecordDataset, empty_record, missing_image_problem, sanitize_boxes


class CocoDataset(RecordDataset):
    """Dataset from a COCO instances json; ``file_name`` is relative to ``image_dir``."""

    def __init__(
        self,
        image_dir: str | Path,
        ann_file: str | Path,
        class_names: tuple[str, ...] | list[str] | None = None,
        on_error: str = "raise",
    ) -> None:
        self.image_dir = Path(image_dir)
        self.ann_file = Path(ann_file)
        repairs: Counter = Counter()
        names, records, problems = parse_coco_json(self.ann_file, self.image_dir, class_names, repairs)
        self.category_ids: tuple[int, ...] = names[1]
        super().__init__(names[0], records, problems, repairs, on_error)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _load_json(path: Path) -> dict:
    """Read the json file; DatasetError for a missing/unparsable file or a non-object top level."""
    if not path.is_file():
        raise DatasetError("annotation file not found", path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"invalid JSON ({exc.msg} at column {exc.colno})", path, line=exc.lineno) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read annotation file ({exc})", path) from None
    if not isinstance(data, dict):
        raise DatasetError(f"top level must be a JSON object, got {type(data).__name__}", path)
    for k in ("images", "categories"):
        if k not in data:
            raise DatasetError(f"missing top-level key {k!r}", path, field=k)
        if not isinstance(data[k], list):
            raise DatasetError(f"expected a list, got {type(data[k]).__name__}", path, field=k)
    if not isinstance(data.get("annotations", []), list):
        raise DatasetError(f"expected a list, got {type(data['annotations']).__name__}", path, field="annotations")
    return data


def _categories(
    cats: list, file: str, class_names: tuple[str, ...] | list[str] | None
) -> tuple[tuple[str, ...], tuple[int, ...], dict[int, int]]:
    """``(class_names, category ids in label order, {category_id: label})``; raises on bad categories."""
    by_id: dict[int, str] = {}
    for i, c in enumerate(cats):
        where = f"categories[{i}]"
        if not isinstance(c, dict):
            raise DatasetError(f"expected an object, got {type(c).__name__}", file, where)
        if not _is_int(c.get("id")):
            raise DatasetError(f"'id' must be an integer, got {c.get('id')!r}", file, f"{where}.id")
        if not isinstance(c.get("name"), str):
            raise DatasetError(f"'name' must be a string, got {c.get('name')!r}", file, f"{where}.name")
        if c["id"] in by_id:
            raise DatasetError(f"duplicate category id {c['id']}", file, f"{where}.id")
        same = [cid for cid, name in by_id.items() if name == c["name"]]
        if same:  # labels are matched by name: the two categories would silently become one class
            raise DatasetError(
                f"categories {same[0]} and {c['id']} share the name {c['name']!r}; give each category its own "
                "name (their boxes would otherwise merge into one class)",
                file, f"{where}.name",
            )  # fmt: skip
        by_id[c["id"]] = c["name"]
    ids = sorted(by_id)
    if class_names is None:
        return tuple(by_id[i] for i in ids), tuple(ids), {cid: k for k, cid in enumerate(ids)}
    index = {n: k for k, n in enumerate(class_names)}
    unknown = [by_id[i] for i in ids if by_id[i] not in index]
    if unknown:
        raise DatasetError(f"categories {unknown} are not in class_names", file, "categories")
    label_of = {cid: index[by_id[cid]] for cid in ids}
    order = tuple(sorted(ids, key=lambda cid: label_of[cid]))
    return tuple(class_names), order, label_of


def parse_coco_json(
    ann_file: Path,
    image_dir: Path,
    class_names: tuple[str, ...] | list[str] | None,
    repairs: Counter,
) -> tuple[tuple[tuple[str, ...], tuple[int, ...]], list[ImageRecord], list[Problem]]:
    """Parse and validate a COCO json, listing every per-image / per-annotation problem.

    Returns ``((class_names, category_ids), records, problems)``.
    """
    file = str(ann_file)
    data = _load_json(ann_file)
    names, cat_ids, label_of = _categories(data["categories"], file, class_names)
    problems: list[Problem] = []

    images: dict[int, dict] = {}
    order: list[int] = []
    for i, im in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(im, dict):
            problems.append(Problem(file, f"expected an object, got {type(im).__name__}", where))
            continue
        iid = im.get("id")
        if not _is_int(iid):
            problems.append(Problem(file, f"'id' must be an integer, got {iid!r}", f"{where}.id"))
            continue
        key = f"image {iid}"
        if iid in images:
            problems.append(Problem(file, f"duplicate image id {iid}", f"{where}.id", key=key))
            continue
        bad = False
        if not isinstance(im.get("file_name"), str) or not im.get("file_name"):
            problems.append(
                Problem(
                    file,
                    f"'file_name' must be a non-empty string, got {im.get('file_name')!r}",
                    f"{where}.file_name",
                    key=key,
                )
            )
            bad = True
        for k in ("width", "height"):
            if not _is_int(im.get(k)) or im[k] <= 0:
                problems.append(
                    Problem(file, f"{k!r} must be a positive integer, got {im.get(k)!r}", f"{where}.{k}", key=key)
                )
                bad = True
        images[iid] = im if not bad else {}
        order.append(iid)

    # Gather annotations per image (lists of (field, xywh, label, crowd)).
    per_image: dict[int, list[tuple[str, list[float], int, bool]]] = {iid: [] for iid in order}
    ann_ids: set[int] = set()
    for i, ann in enumerate(data.get("annotations", [])):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            problems.append(Problem(file, f"expected an object, got {type(ann).__name__}", where))
            continue
        iid = ann.get("image_id")
        key = f"image {iid}" if iid in per_image else None
        if not _is_int(iid):
            problems.append(Problem(file, f"'image_id' must be an integer, got {iid!r}", f"{where}.image_id"))
            continue
        if iid not in per_image:
            problems.append(Problem(file, f"refers to image id {iid}, which is not in 'images'", f"{where}.image_id"))
            continue
        aid = ann.get("id")
        if not _is_int(aid):
            problems.append(Problem(file, f"'id' must be an integer, got {aid!r}", f"{where}.id", key=key))
            continue
        if aid in ann_ids:
            problems.append(Problem(file, f"duplicate annotation id {aid}", f"{where}.id", key=key))
            continue
        ann_ids.add(aid)
        cid = ann.get("category_id")
        if not _is_int(cid) or cid not in label_of:
            problems.append(Problem(file, f"unknown category_id {cid!r}", f"{where}.category_id", key=key))
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
            problems.append(
                Problem(
                    file,
                    f"'bbox' must be 4 finite numbers [x, y, w, h], got {bbox!r:.80}",
                    f"{where}.bbox",
                    key=key,
                )
            )
            continue
        if bbox[2] < 0 or bbox[3] < 0:
            problems.append(Problem(file, f"bbox width/height must be >= 0, got {bbox}", f"{where}.bbox", key=key))
            continue
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, float):
            problems.append(Problem(file, f"'iscrowd' must be 0 or 1, got {crowd!r}", f"{where}.iscrowd", key=key))
            continue
        per_image[iid].append((f"{where}.bbox", bbox, label_of[cid], bool(crowd)))

    records: list[ImageRecord] = []
    for iid in order:
        im = images[iid]
        if not im:
            continue
        key = f"image {iid}"
        path = image_dir / im["file_name"]
        missing = missing_image_problem(path, key)
        if missing is not None:
            problems.append(missing)
        anns = per_image[iid]
        xywh = np.array([a[1] for a in anns], np.float64).reshape(-1, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)  # [N, 4] xyxy
        keep, found = sanitize_boxes(boxes, im["height"], im["width"], file, [a[0] for a in anns], key, repairs)
        problems.extend(found)
        rec = empty_record(key, iid, path, im["height"], im["width"], file)
        rec.boxes = boxes[keep].astype(np.float32).reshape(-1, 4)
        rec.labels = np.array([a[2] for a in anns], np.int64).reshape(-1)[keep]
        rec.ignore = np.array([a[3] for a in anns], bool).reshape(-1)[keep]
        records.append(rec)
    return (names, cat_ids), records, problems
