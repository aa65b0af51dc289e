"""Checking a written benchmark folder: complete, and its VOC and COCO annotations agree."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import cv2

from mgdet.data.benchmark.scene import SPLITS
from mgdet.data.benchmark.writer import _OUTPUTS


def _read_voc_boxes(path: Path) -> tuple[tuple[int, int], list[tuple[str, list[int]]]]:
    """``((width, height), [(name, xyxy pixel edges)])`` from one VOC xml file."""
    tree = ET.parse(path).getroot()
    size = tree.find("size")
    wh = (int(size.findtext("width")), int(size.findtext("height")))
    objs = []
    for obj in tree.iter("object"):
        bb = obj.find("bndbox")
        xmin, ymin, xmax, ymax = (int(float(bb.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))
        objs.append((obj.findtext("name"), [xmin - 1, ymin - 1, xmax, ymax]))
    return wh, objs


def verify_benchmark(root: str | Path, check_images: bool = True) -> list[str]:
    """Check that a benchmark folder is complete and its VOC and COCO annotations agree.

    Returns a list of problems (empty when everything is consistent): missing files, ImageSets and
    COCO images that differ, boxes outside their image or empty, XML and JSON boxes/classes that
    differ, JPEGs whose size differs from the annotation (when ``check_images``).
    """
    root = Path(root)
    problems: list[str] = []
    for name in _OUTPUTS:
        if not (root / name).exists():
            problems.append(f"missing {name}")
    if problems:
        return problems
    classes = (root / "classes.txt").read_text().split()
    for split in SPLITS:
        ids = (root / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        coco = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        if [cats.get(k + 1) for k in range(len(classes))] != classes or len(cats) != len(classes):
            problems.append(f"{split}: COCO categories differ from classes.txt")
        by_image: dict[int, list[dict]] = {im["id"]: [] for im in coco["images"]}
        for ann in coco["annotations"]:
            if ann["image_id"] not in by_image:
                problems.append(f"{split}: annotation {ann['id']} refers to unknown image {ann['image_id']}")
                continue
            by_image[ann["image_id"]].append(ann)
        stems = [Path(im["file_name"]).stem for im in coco["images"]]
        if stems != ids:
            problems.append(f"{split}: ImageSets/Main/{split}.txt and COCO images differ")
        for im in coco["images"]:
            stem = Path(im["file_name"]).stem
            xml_path = root / "Annotations" / f"{stem}.xml"
            jpg_path = root / "JPEGImages" / im["file_name"]
            if not xml_path.is_file() or not jpg_path.is_file():
                problems.append(f"{stem}: missing xml or jpg")
                continue
            (w, h), voc = _read_voc_boxes(xml_path)
            if (w, h) != (im["width"], im["height"]):
                problems.append(f"{stem}: xml size {(w, h)} != json size {(im['width'], im['height'])}")
            coco_objs = [
                (
                    cats.get(a["category_id"]),
                    [*a["bbox"][:2], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]],
                )
                for a in by_image[im["id"]]
            ]
            if voc != coco_objs:
                problems.append(f"{stem}: VOC and COCO boxes differ")
            for name, (x1, y1, x2, y2) in voc:
                if name not in classes:
                    problems.append(f"{stem}: unknown class {name!r}")
                if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                    problems.append(f"{stem}: box {[x1, y1, x2, y2]} empty or outside the {w}x{h} image")
            if check_images:
                img = cv2.imread(str(jpg_path), cv2.IMREAD_UNCHANGED)
                if img is None or img.shape != (h, w, 3):
                    problems.append(f"{stem}: JPEG unreadable or not {w}x{h}x3")
    return problems
