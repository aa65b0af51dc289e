"""VOC / COCO / YOLO loaders on tiny datasets written into tmp_path, and image decoding."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from mgdet.data import (
    CocoDataset,
    DatasetError,
    VOCDataset,
    YoloDataset,
    read_image,
    voc_datasets,
)
from mgdet.data.image_io import apply_exif_orientation


def write_image(path: Path, h: int, w: int, color=(200, 30, 60)) -> None:
    """Solid RGB image (written as BGR by OpenCV)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((h, w, 3), np.uint8)
    img[:] = color[::-1]
    assert cv2.imwrite(str(path), img)


def voc_xml(h: int, w: int, objects: list[tuple[str, tuple[int, int, int, int], int]], size: bool = True) -> str:
    objs = "".join(
        f"<object><name>{n}</name><difficult>{d}</difficult><bndbox><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>"
        for n, b, d in objects
    )
    sz = f"<size><width>{w}</width><height>{h}</height><depth>3</depth></size>" if size else ""
    return f"<annotation><filename>x.jpg</filename>{sz}{objs}</annotation>"


def make_voc(root: Path, items: dict[str, tuple[int, int, list]], split: str = "train") -> Path:
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for stem, (h, w, objs) in items.items():
        write_image(root / "JPEGImages" / f"{stem}.jpg", h, w)
        (root / "Annotations" / f"{stem}.xml").write_text(voc_xml(h, w, objs))
    (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(items) + "\n")
    return root


def test_voc_boxes_labels_ignore_and_one_based_conversion(tmp_path: Path) -> None:
    root = make_voc(
        tmp_path / "VOC2007",
        {
            "000005": (40, 60, [("dog", (1, 1, 10, 20), 0), ("cat", (5, 6, 60, 40), 1)]),
            "000007": (30, 30, []),
        },
    )
    ds = VOCDataset(root, "train")
    assert len(ds) == 2 and ds.class_names[11] == "dog"
    image, target = ds[0]
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8
    assert np.abs(image.astype(int) - [200, 30, 60]).max() <= 3  # RGB order, JPEG tolerance
    # 1-based inclusive (1, 1, 10, 20) -> 0-based (0, 0, 10, 20).
    np.testing.assert_array_equal(target["boxes"], [[0, 0, 10, 20], [4, 5, 60, 40]])
    assert target["boxes"].dtype == np.float32 and target["labels"].dtype == np.int64
    assert target["labels"].tolist() == [11, 7]
    assert target["ignore"].tolist() == [False, True]
    assert target["image_id"] == 5 and target["size"] == (40, 60)
    _, empty = ds[1]
    assert empty["boxes"].shape == (0, 4) and empty["labels"].shape == (0,) and empty["ignore"].shape == (0,)
    info = ds.image_info(1)
    assert info["image_id"] == 7 and (info["height"], info["width"]) == (30, 30)
    assert info["file"].endswith("000007.jpg")
    gt = ds.coco_gt()
    assert [g["image_id"] for g in gt] == [5, 7] and gt[0]["ignore"].tolist() == [False, True]
    assert set(gt[0]) == {"image_id", "boxes", "labels", "ignore", "height", "width"}
    no_diff = VOCDataset(root, "train", keep_difficult=False)
    assert no_diff.target(0)["labels"].tolist() == [11]


def test_voc_repairs_and_custom_classes(tmp_path: Path) -> None:
    root = make_voc(
        tmp_path / "bench",
        {"a": (50, 50, [("x", (0, 1, 52, 10), 0)]), "b": (50, 50, [("y", (3, 3, 9, 9), 0)])},
    )
    (root / "Annotations" / "b.xml").write_text(voc_xml(50, 50, [("y", (3, 3, 9, 9), 0)], size=False))
    ds = VOCDataset(root, "train", class_names=("x", "y"))
    # x1 = 0 - 1 = -1 and x2 = 52 > 50: slightly outside -> clipped.
    np.testing.assert_array_equal(ds.target(0)["boxes"], [[0, 0, 50, 10]])
    assert ds.repairs["box_clipped"] == 1 and ds.repairs["size_from_image"] == 1
    assert ds.image_info(1)["height"] == 50
    assert [r["image_id"] for r in ds.coco_gt()] == [0, 1]  # non-numeric stems -> split-file order


def test_voc_07_plus_12(tmp_path: Path) -> None:
    devkit = tmp_path / "VOCdevkit"
    make_voc(devkit / "VOC2007", {"000001": (20, 20, [("car", (2, 2, 8, 8), 0)])}, "trainval")
    make_voc(devkit / "VOC2012", {"2008_000002": (20, 20, [("bus", (2, 2, 8, 8), 1)])}, "trainval")
    ds = voc_datasets(devkit, "07+12", "trainval")
    assert len(ds) == 2
    assert [g["image_id"] for g in ds.coco_gt()] == [1, 2008000002]
    assert ds[1][1]["ignore"].tolist() == [True]
    assert len(voc_datasets(devkit, "07", "trainval")) == 1


def write_coco(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def coco_fixture(tmp_path: Path) -> tuple[Path, Path]:
    images = tmp_path / "images"
    write_image(images / "a.png", 40, 50)
    write_image(images / "b.png", 30, 30)
    data = {
        "images": [
            {"id": 10, "file_name": "a.png", "width": 50, "height": 40},
            {"id": 11, "file_name": "b.png", "width": 30, "height": 30},
        ],
        "categories": [{"id": 7, "name": "zebra"}, {"id": 2, "name": "ant"}],
        "annotations": [
            {"id": 1, "image_id": 10, "category_id": 7, "bbox": [5, 6, 10, 20], "iscrowd": 0},
            {"id": 2, "image_id": 10, "category_id": 2, "bbox": [0, 0, 50, 40], "iscrowd": 1},
            {"id": 3, "image_id": 10, "category_id": 2, "bbox": [1, 1, 0, 5], "iscrowd": 0},
        ],
    }
    return images, write_coco(tmp_path / "ann.json", data)


def test_coco_categories_crowd_empty_and_zero_area(tmp_path: Path) -> None:
    images, ann = coco_fixture(tmp_path)
    ds = CocoDataset(images, ann)
    assert ds.class_names == ("ant", "zebra") and ds.category_ids == (2, 7)  # sorted category ids
    image, t = ds[0]
    assert image.shape == (40, 50, 3)
    np.testing.assert_array_equal(t["boxes"], [[5, 6, 15, 26], [0, 0, 50, 40]])  # xywh -> xyxy
    assert t["labels"].tolist() == [1, 0] and t["ignore"].tolist() == [False, True]
    assert ds.repairs["zero_area_box_dropped"] == 1
    _, empty = ds[1]
    assert empty["image_id"] == 11 and empty["boxes"].shape == (0, 4)
    by_name = CocoDataset(images, ann, class_names=["zebra", "ant", "extra"])
    assert by_name.target(0)["labels"].tolist() == [0, 1]


def test_yolo_rows_to_pixels(tmp_path: Path) -> None:
    write_image(tmp_path / "images" / "001.jpg", 100, 200)
    write_image(tmp_path / "images" / "002.jpg", 10, 10)
    (tmp_path / "labels").mkdir()
    (tmp_path / "labels" / "001.txt").write_text("1 0.5 0.5 0.5 0.2\n\n0 0.25 0.5 0.1 0.1\n")
    ds = YoloDataset(tmp_path / "images", tmp_path / "labels", ["a", "b"])
    t = ds.target(0)
    np.testing.assert_allclose(t["boxes"], [[50, 40, 150, 60], [40, 45, 60, 55]])
    assert t["labels"].tolist() == [1, 0] and not t["ignore"].any()
    assert t["image_id"] == 1 and ds.image_info(1)["height"] == 10
    assert ds.target(1)["boxes"].shape == (0, 4)  # no label file -> no objects


def test_skip_policy_drops_bad_images(tmp_path: Path) -> None:
    root = make_voc(tmp_path / "v", {"a": (20, 20, [("cat", (2, 2, 8, 8), 0)]), "b": (20, 20, [])})
    (root / "Annotations" / "b.xml").write_text(voc_xml(20, 20, [("unicorn", (2, 2, 8, 8), 0)]))
    with pytest.raises(DatasetError, match=r"b\.xml.*unicorn"):
        VOCDataset(root, "train")
    ds = VOCDataset(root, "train", on_error="skip")
    assert len(ds) == 1 and ds.skipped == ["b"] and "unicorn" in str(ds.problems[0])


# ---------------------------------------------------------------- image decoding
def test_grayscale_rgba_and_16bit(tmp_path: Path) -> None:
    gray = np.full((8, 9), 77, np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    assert (read_image(tmp_path / "g.png") == 77).all() and read_image(tmp_path / "g.png").shape == (8, 9, 3)
    rgba = np.zeros((5, 6, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)  # BGR
    rgba[..., 3] = 0
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert read_image(tmp_path / "a.png")[0, 0].tolist() == [30, 20, 10]
    deep = np.full((4, 4, 3), 65535, np.uint16)
    deep[..., 0] = 257 * 100  # blue channel
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    out = read_image(tmp_path / "d.png")
    assert out.dtype == np.uint8 and out[0, 0].tolist() == [255, 255, 100]


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pil(tmp_path: Path, orientation: int) -> None:
    rng = np.random.default_rng(orientation)
    pixels = rng.integers(0, 255, (6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "e.png"
    Image.fromarray(pixels).save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(read_image(path), expected)
    np.testing.assert_array_equal(apply_exif_orientation(pixels, orientation), expected)


def test_exif_rotated_jpeg_and_raw_annotation_fallback(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = tmp_path / "r.jpg"
    Image.fromarray(np.full((20, 40, 3), 90, np.uint8)).save(path, exif=exif)
    assert read_image(path).shape == (40, 20, 3)  # displayed orientation
    assert read_image(path, expected_hw=(40, 20)).shape == (40, 20, 3)
    assert read_image(path, expected_hw=(20, 40)).shape == (20, 40, 3)  # annotated on raw pixels
    with pytest.raises(DatasetError, match="r.jpg"):
        read_image(path, expected_hw=(33, 33))


@pytest.mark.parametrize("per_split", [True, False])
def test_train_and_data_check_open_a_yolo_folder_by_one_rule(tmp_path, per_split):
    """`train` used to look in images/<split> and `data check` in images/ (issue 23, item 6): both now open a
    dataset with open_dataset, so they see the same images in either layout."""
    import cv2

    from mgdet.data.validate import open_dataset
    from mgdet.engine.builders import build_dataset
    from mgdet.engine.config import from_dict

    root = tmp_path / "yolo"
    sub = ("train",) if per_split else ()
    (root / "images" / Path(*sub)).mkdir(parents=True)
    (root / "labels" / Path(*sub)).mkdir(parents=True)
    (root / "classes.txt").write_text("cat\ndog\n")
    for k in range(3):
        cv2.imwrite(str(root / "images" / Path(*sub) / f"im{k}.png"), np.full((32, 40, 3), 60 + k, np.uint8))
        (root / "labels" / Path(*sub) / f"im{k}.txt").write_text(f"{k % 2} 0.5 0.5 0.25 0.5\n")
    cfg = from_dict({"data": {"format": "yolo", "root": str(root), "train_split": "train"}})
    trained = build_dataset(cfg.data, train=True)
    checked = open_dataset(root, "auto", "train")
    assert [r.path for r in trained.records] == [r.path for r in checked.records] and len(trained) == 3
    assert [r.labels.tolist() for r in trained.records] == [[0], [1], [0]]
