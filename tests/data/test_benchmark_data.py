"""Tests of the shipped CPU benchmark generator (mgdet/data/benchmark/). Tiny sizes, a few seconds."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from mgdet.data import benchmark as bm
from mgdet.data.benchmark.scene import _random_background
from mgdet.data.benchmark.writer import MARKER
from mgdet.errors import OutputError

NUM_TRAIN, NUM_VAL = 14, 6


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bench") / "seed7"
    info = bm.generate_benchmark(root, seed=7, num_train=NUM_TRAIN, num_val=NUM_VAL)
    assert not info.skipped
    return root


def _voc_boxes(path: Path) -> tuple[list[str], np.ndarray]:
    """Names and xyxy pixel-edge boxes of a VOC xml (x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax)."""
    objs = ET.parse(path).getroot().findall("object")
    names = [o.findtext("name") for o in objs]
    boxes = [
        [int(o.find("bndbox").findtext(k)) - d for k, d in (("xmin", 1), ("ymin", 1), ("xmax", 0), ("ymax", 0))]
        for o in objs
    ]
    return names, np.asarray(boxes, np.float32).reshape(-1, 4)


def test_layout_and_verify(generated: Path) -> None:
    for rel in ("JPEGImages", "Annotations", "ImageSets/Main/train.txt", "ImageSets/Main/val.txt"):
        assert (generated / rel).exists(), rel
    for rel in ("annotations/instances_train.json", "annotations/instances_val.json", "classes.txt"):
        assert (generated / rel).is_file(), rel
    assert (generated / "classes.txt").read_text().split() == list(bm.CLASS_NAMES)
    assert len(bm.CLASS_NAMES) >= 10
    assert len(list((generated / "JPEGImages").glob("*.jpg"))) == NUM_TRAIN + NUM_VAL
    readme = (generated / "README.md").read_text()
    assert "CC BY 2.0" in readme and "licence" in readme.lower()
    meta = json.loads((generated / "benchmark.json").read_text())
    assert meta["generator_version"] == bm.GENERATOR_VERSION and meta["params"]["seed"] == 7
    assert bm.verify_benchmark(generated) == []


def test_same_seed_identical_bytes_other_seed_differs(generated: Path, tmp_path: Path) -> None:
    again = bm.generate_benchmark(tmp_path / "again", seed=7, num_train=NUM_TRAIN, num_val=NUM_VAL)
    assert _files(generated) == _files(again.root)
    other = bm.generate_benchmark(tmp_path / "other", seed=8, num_train=NUM_TRAIN, num_val=NUM_VAL)
    a, b = _files(generated), _files(other.root)
    assert a.keys() == b.keys()
    jpgs = [k for k in a if k.endswith(".jpg")]
    assert sum(a[k] != b[k] for k in jpgs) == len(jpgs)
    assert a["annotations/instances_train.json"] != b["annotations/instances_train.json"]


def test_files_describe_the_rendered_objects(generated: Path) -> None:
    """XML and COCO boxes equal the boxes of the in-memory render (which the mask test checks)."""
    for split, count in (("train", NUM_TRAIN), ("val", NUM_VAL)):
        coco = json.loads((generated / "annotations" / f"instances_{split}.json").read_text())
        assert [c["id"] for c in coco["categories"]] == list(range(1, len(bm.CLASS_NAMES) + 1))
        assert (generated / "ImageSets/Main" / f"{split}.txt").read_text().split() == [
            bm.image_stem(split, i) for i in range(count)
        ]
        for i, im in enumerate(coco["images"]):
            sample = bm.render_sample(seed=7, index=i, split=split)
            anns = [a for a in coco["annotations"] if a["image_id"] == im["id"]]
            xywh = np.asarray([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
            coco_xyxy = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
            names, voc_xyxy = _voc_boxes(generated / "Annotations" / f"{bm.image_stem(split, i)}.xml")
            np.testing.assert_array_equal(coco_xyxy, sample.boxes)
            np.testing.assert_array_equal(voc_xyxy, sample.boxes)
            assert names == [bm.CLASS_NAMES[k] for k in sample.labels]
            assert [a["category_id"] - 1 for a in anns] == sample.labels.tolist()
            assert all(a["iscrowd"] == 0 and a["area"] == a["bbox"][2] * a["bbox"][3] for a in anns)


def test_boxes_are_the_tight_extent_of_the_masks() -> None:
    size = bm.DEFAULT_IMAGE_SIZE
    for i in range(40):
        s = bm.render_sample(seed=1, index=i)
        n = len(s)
        assert s.image.shape == (size, size, 3) and s.image.dtype == np.uint8
        assert s.boxes.shape == (n, 4) and s.masks.shape == (n, size, size) and s.labels.dtype == np.int64
        assert np.all((s.boxes >= 0) & (s.boxes <= size))
        assert np.all(s.boxes[:, 2:] > s.boxes[:, :2])
        for box, mask, vis in zip(s.boxes, s.masks, s.visible):
            rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
            np.testing.assert_array_equal(box, [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1])
            assert not np.any(vis & ~mask)  # visible part is part of the object
        if n:
            assert s.visible.sum(0).max() <= 1  # each pixel shows at most one object
            assert np.all(s.visible_fraction >= 0.3 - 1e-6)  # never more than 70% hidden
            assert np.all((s.occlusion >= 0) & (s.occlusion <= 0.7 + 1e-6))


def test_objects_are_visible_in_the_pixels() -> None:
    """Pasting changes the pixels under the visible part of each object (no invisible annotations)."""
    for i in range(10):
        s = bm.render_sample(seed=2, index=i)
        bg = _random_background(bm.image_rng(2, "train", i), bm.DEFAULT_IMAGE_SIZE)  # same first draws
        for vis in s.visible:
            diff = np.abs(s.image[vis].astype(np.float32) - bg[vis].astype(np.float32)).mean()
            assert diff > 15.0


def test_hard_cases_occur_at_default_settings() -> None:
    samples = [bm.render_sample(seed=0, index=i) for i in range(150)]
    st = bm.sample_statistics(samples, bm.DEFAULT_IMAGE_SIZE)
    assert 1 <= st["empty_images"] <= 20  # about 5%
    assert st["max_objects_per_image"] >= 5
    assert st["overlapping_pairs_iou_0.1_0.5"] >= 50  # "rider on a horse" pairs
    assert st["occluded_objects"] >= 50 and st["heavily_occluded_objects"] >= 5
    assert st["truncated_objects"] >= 20
    assert st["box_side_min_frac"] <= 0.09 and st["box_side_max_frac"] >= 0.5
    assert st["coco_small"] > 0 and st["coco_medium"] > 0 and st["coco_large"] > 0
    assert min(st["objects_per_class"].values()) >= 20
    assert 2.5 <= st["objects"] / st["images"] <= 4.5


def test_skip_overwrite_and_foreign_files(tmp_path: Path) -> None:
    root = tmp_path / "b"
    root.mkdir()
    (root / "mine.txt").write_text("keep me")
    first = bm.generate_benchmark(root, seed=3, num_train=3, num_val=2)
    assert not first.skipped and first.stats["train"]["images"] == 3
    again = bm.generate_benchmark(root, seed=3, num_train=3, num_val=2)
    assert again.skipped and again.stats == first.stats
    assert bm.benchmark_matches(root, 3, 3, 2, bm.DEFAULT_IMAGE_SIZE)
    assert not bm.benchmark_matches(root, 4, 3, 2, bm.DEFAULT_IMAGE_SIZE)
    with pytest.raises(OutputError, match="--overwrite"):
        bm.generate_benchmark(root, seed=4, num_train=3, num_val=2)
    info = bm.generate_benchmark(root, seed=4, num_train=2, num_val=1, overwrite=True)
    assert not info.skipped
    assert len(list((root / "JPEGImages").glob("*.jpg"))) == 3
    assert (root / "mine.txt").read_text() == "keep me"
    from mgdet.cli.data import generate_summary

    rows = generate_summary(info)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in rows)


def test_verify_reports_disagreement(tmp_path: Path) -> None:
    root = tmp_path / "b"
    bm.generate_benchmark(root, seed=5, num_train=4, num_val=1)
    assert bm.verify_benchmark(root) == []
    stem = next(bm.image_stem("train", i) for i in range(4) if len(bm.render_sample(seed=5, index=i, split="train")))
    xml = root / "Annotations" / f"{stem}.xml"
    text = xml.read_text()
    start = text.index("<xmax>") + len("<xmax>")
    end = text.index("</xmax>")
    xml.write_text(text[:start] + str(int(text[start:end]) - 1) + text[end:])
    problems = bm.verify_benchmark(root)
    assert any(stem in p and "differ" in p for p in problems)


def test_backgrounds_ship_with_pip_packages() -> None:
    images = bm.load_backgrounds()
    assert len(images) == len(bm.BACKGROUND_SOURCES) >= 10
    for img in images:
        assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8 and max(img.shape) <= 512


def _voc_like(root: Path) -> dict[Path, bytes]:
    """A user's VOC dataset (no benchmark.json): its files and their bytes."""
    files = {
        root / "JPEGImages" / "000001.jpg": b"\xff\xd8 not really a jpeg",
        root / "Annotations" / "000001.xml": b"<annotation/>",
        root / "ImageSets" / "Main" / "train.txt": b"000001\n",
        root / "README.md": b"my notes",
        root / "classes.txt": b"cat\n",
    }
    for f, data in files.items():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    return files


@pytest.mark.parametrize("overwrite", [False, True])
def test_generate_never_touches_a_real_dataset(tmp_path: Path, overwrite: bool) -> None:
    files = _voc_like(tmp_path / "my_voc")
    with pytest.raises(OutputError, match="not a benchmark written by mgdet.*JPEGImages"):
        bm.generate_benchmark(tmp_path / "my_voc", seed=1, num_train=2, num_val=1, overwrite=overwrite)
    assert all(f.read_bytes() == data for f, data in files.items())


def test_overwrite_removes_only_recorded_files(tmp_path: Path) -> None:
    root = tmp_path / "b"
    bm.generate_benchmark(root, seed=1, num_train=3, num_val=1)
    extra = root / "JPEGImages" / "holiday.jpg"  # a user's file put into the benchmark's folder
    extra.write_bytes(b"mine")
    bm.generate_benchmark(root, seed=2, num_train=1, num_val=1, overwrite=True)
    assert extra.read_bytes() == b"mine"
    names = sorted(p.name for p in (root / "JPEGImages").iterdir())
    assert names == ["holiday.jpg", "train_000000.jpg", "val_000000.jpg"]
    assert not (root / MARKER).exists()


def test_crowded_benchmark_has_100_to_300_small_objects_per_image(tmp_path):
    """`mgdet data generate --crowded` (issue 24): many small objects per image, recorded in benchmark.json; the
    record of a default benchmark is unchanged (no min_objects key), so existing folders still match."""
    import json

    from mgdet.cli import main
    from mgdet.data.benchmark.writer import _params

    out = tmp_path / "crowded"
    assert main(["data", "generate", "--out", str(out), "--size", "3", "--val-size", "1", "--crowded",
                 "--no-progress"]) == 0  # fmt: skip
    meta = json.loads((out / "benchmark.json").read_text())
    assert meta["params"]["scene"]["min_objects"] == 100 and meta["params"]["scene"]["max_objects"] == 300
    coco = json.loads((out / "annotations" / "instances_train.json").read_text())
    per_image = {}
    for ann in coco["annotations"]:
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
        assert max(ann["bbox"][2:]) <= 0.12 * 256  # small
    assert len(per_image) == 3 and all(60 <= n <= 300 for n in per_image.values())  # a few may not fit
    assert "min_objects" not in _params(0, 10, 2, 256)["scene"]
