"""Seeded fuzzing of malformed annotations and broken images.

Every failure must be a DatasetError naming the file, never another exception type, and
check_dataset must list all problems of a dataset at once.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mgdet.data import CocoDataset, DatasetError, VOCDataset, YoloDataset, check_dataset, probe_image, read_image

H, W = 50, 60
CLASSES = ("cat", "dog")
N_VOC, N_COCO, N_YOLO = 90, 80, 60  # 230 malformed annotation files


def tiny_png(path: Path, h: int = H, w: int = W) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((h, w, 3), 127, np.uint8))


# ------------------------------------------------------------------------------------------ VOC
def voc_text(objects: list[dict], size: dict | None = None, root: str = "annotation") -> str:
    size = {"width": str(W), "height": str(H)} if size is None else size
    sz = "<size>" + "".join(f"<{k}>{v}</{k}>" for k, v in size.items()) + "</size>"
    objs = ""
    for o in objects:
        box = o.get("bndbox")
        bb = "" if box is None else "<bndbox>" + "".join(f"<{k}>{v}</{k}>" for k, v in box.items()) + "</bndbox>"
        name = "" if o.get("name") is None else f"<name>{o['name']}</name>"
        objs += f"<object>{name}<difficult>{o.get('difficult', '0')}</difficult>{bb}</object>"
    return f"<{root}>{sz}{objs}</{root}>"


def good_objects() -> list[dict]:
    return [
        {"name": "cat", "bndbox": {"xmin": "3", "ymin": "4", "xmax": "20", "ymax": "30"}},
        {"name": "dog", "bndbox": {"xmin": "25", "ymin": "10", "xmax": "58", "ymax": "49"}, "difficult": "1"},
    ]


def bad_voc(rng: np.random.Generator) -> str | bytes:
    """One malformed VOC annotation (every mutation is invalid by construction)."""
    objs = good_objects()
    o = objs[int(rng.integers(2))]
    coord = ["xmin", "ymin", "xmax", "ymax"][int(rng.integers(4))]
    kind = int(rng.integers(13))
    if kind == 0:  # truncated
        text = voc_text(objs)
        return text[: int(rng.integers(1, len(text) - 2))]
    if kind == 1:
        del o["bndbox"][coord]
    elif kind == 2:
        o["bndbox"][coord] = ["abc", "1e", "12px", "", "nan", "inf", "3,5"][int(rng.integers(7))]
    elif kind == 3:
        o["bndbox"][coord] = str(-int(rng.integers(1, 100)))
    elif kind == 4:  # inverted corners
        b = o["bndbox"]
        b["xmin"], b["xmax"] = b["xmax"], b["xmin"]
    elif kind == 5:  # far outside the image
        o["bndbox"]["xmax"] = str(W + int(rng.integers(20, 500)))
    elif kind == 6:
        o["name"] = ["unicorn", "Cat", "cat dog"][int(rng.integers(3))]
    elif kind == 7:
        o["name"] = None
    elif kind == 8:
        del o["bndbox"]
    elif kind == 9:
        o["difficult"] = "yes"
    elif kind == 10:
        return voc_text(objs, {"width": ["0", "-3", "abc", "12.5"][int(rng.integers(4))], "height": str(H)})
    elif kind == 11:
        return voc_text(objs, root="annotations")
    else:
        return [b"", bytes(rng.integers(0, 256, 64, dtype=np.uint8)), b"just text"][int(rng.integers(3))]
    return voc_text(objs)


def test_fuzz_voc_annotations(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    root = tmp_path / "voc"
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "Annotations").mkdir()
    stems = [f"bad{i:03d}" for i in range(N_VOC)]
    for stem in stems:
        tiny_png(root / "JPEGImages" / f"{stem}.png")
        data = bad_voc(rng)
        path = root / "Annotations" / f"{stem}.xml"
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
        (root / "ImageSets" / "Main" / f"{stem}.txt").write_text(stem + "\n")
    for stem in stems:
        with pytest.raises(DatasetError) as info:
            VOCDataset(root, stem, CLASSES, image_ext=".png")
        assert f"{stem}.xml" in str(info.value)
    # All problems at once: one split with every file, plus two good images.
    for stem in ("good1", "good2"):
        tiny_png(root / "JPEGImages" / f"{stem}.png")
        (root / "Annotations" / f"{stem}.xml").write_text(voc_text(good_objects()))
    (root / "ImageSets" / "Main" / "all.txt").write_text("\n".join(stems + ["good1", "good2"]))
    ds = VOCDataset(root, "all", CLASSES, on_error="skip", image_ext=".png")
    assert len(ds) == 2 and sorted(ds.skipped) == stems
    report = check_dataset(ds)
    assert {Path(p.file).stem for p in report.errors} == set(stems)
    assert report.num_images == 2 and report.num_objects == 4 and report.class_histogram == {"cat": 2, "dog": 2}


# ----------------------------------------------------------------------------------------- COCO
def good_coco() -> dict:
    return {
        "images": [
            {"id": 1, "file_name": "a.png", "width": W, "height": H},
            {"id": 2, "file_name": "b.png", "width": W, "height": H},
        ],
        "categories": [{"id": 1, "name": "cat"}, {"id": 5, "name": "dog"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 10], "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 5, "bbox": [20, 20, 30, 20], "iscrowd": 1},
            {"id": 3, "image_id": 2, "category_id": 5, "bbox": [0, 0, 5, 5]},
        ],
    }


def _coco_mutations() -> list[Callable[[dict, np.random.Generator], object]]:
    def ann(d, rng):
        return d["annotations"][int(rng.integers(3))]

    def im(d, rng):
        return d["images"][int(rng.integers(2))]

    return [
        lambda d, r: d.pop(["images", "categories"][int(r.integers(2))]),
        lambda d, r: d.update(images={"id": 1}),
        lambda d, r: d.update(annotations="none"),
        lambda d, r: d.update(categories=[{"id": "1", "name": "cat"}]),
        lambda d, r: d["categories"].append({"id": 1, "name": "again"}),
        lambda d, r: d["categories"][0].pop("name"),
        lambda d, r: im(d, r).update(id=str(im(d, r)["id"])),
        lambda d, r: d["images"].append(dict(d["images"][0])),  # duplicate image id
        lambda d, r: im(d, r).pop(["file_name", "width", "height"][int(r.integers(3))]),
        lambda d, r: im(d, r).update(width=[0, -5, "60", 12.5, None][int(r.integers(5))]),
        lambda d, r: d["images"].append("image"),
        lambda d, r: ann(d, r).update(image_id=int(r.integers(3, 1000))),  # image does not exist
        lambda d, r: (
            ann(d, r).update(id=d["annotations"][(int(r.integers(2)) + 1) % 3]["id"] * 0 + 1)
            if ann(d, r)["id"] != 1
            else d["annotations"][1].update(id=1)
        ),
        lambda d, r: ann(d, r).pop(["id", "image_id", "category_id", "bbox"][int(r.integers(4))]),
        lambda d, r: ann(d, r).update(category_id=[99, "1", None, 2.0][int(r.integers(4))]),
        lambda d, r: ann(d, r).update(
            bbox=[[1, 2, 3], "1,2,3,4", [1, "2", 3, 4], [1, 2, 3, None], {}][int(r.integers(5))]
        ),
        lambda d, r: ann(d, r).update(bbox=[1, 2, -float(r.integers(1, 9)), 4]),
        lambda d, r: ann(d, r).update(bbox=[1, 2, float("nan"), 4]),
        lambda d, r: ann(d, r).update(bbox=[W + 30, 1, 5, 5]),
        lambda d, r: ann(d, r).update(iscrowd=[2, "yes", 0.5][int(r.integers(3))]),
        lambda d, r: d["annotations"].append(7),
    ]


def bad_coco(rng: np.random.Generator) -> str:
    """One malformed COCO json text."""
    muts = _coco_mutations()
    k = int(rng.integers(len(muts) + 2))
    if k == len(muts):  # truncated json
        text = json.dumps(good_coco())
        return text[: int(rng.integers(1, len(text) - 1))]
    if k == len(muts) + 1:
        return ["[1, 2]", '"text"', "null", "{'single': 1}"][int(rng.integers(4))]
    d = good_coco()
    muts[k](d, rng)
    return json.dumps(d)


def test_fuzz_coco_annotations(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    images = tmp_path / "images"
    tiny_png(images / "a.png")
    tiny_png(images / "b.png")
    assert len(CocoDataset(images, _write(tmp_path / "good.json", json.dumps(good_coco())))) == 2
    for i in range(N_COCO):
        path = _write(tmp_path / f"bad{i:03d}.json", bad_coco(rng))
        with pytest.raises(DatasetError) as info:
            CocoDataset(images, path)
        assert path.name in str(info.value), str(info.value)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_coco_check_lists_every_problem(tmp_path: Path) -> None:
    images = tmp_path / "images"
    tiny_png(images / "a.png")
    tiny_png(images / "b.png")
    d = good_coco()
    d["images"].append({"id": 3, "file_name": "missing.png", "width": W, "height": H})
    d["annotations"] += [
        {"id": 10, "image_id": 42, "category_id": 1, "bbox": [1, 1, 2, 2]},  # orphan
        {"id": 11, "image_id": 2, "category_id": 77, "bbox": [1, 1, 2, 2]},  # unknown category
        {"id": 12, "image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 3]},  # zero area: repaired
        {"id": 13, "image_id": 1, "category_id": 1, "bbox": [55, 1, 10, 3]},  # slightly outside: clipped
    ]
    ann = _write(tmp_path / "instances_val.json", json.dumps(d))
    report = check_dataset(ann)
    fields = sorted(p.field for p in report.errors)
    assert fields == ["annotations[3].image_id", "annotations[4].category_id"]
    assert [Path(p.file).name for p in report.broken_images] == ["missing.png"]
    assert report.repairs["zero_area_box_dropped"] == 1 and report.repairs["box_clipped"] == 1
    assert report.num_images == 1 and not report.ok  # image 2 skipped (bad annotation), 3 missing
    assert "missing.png" in report.summary()


# ----------------------------------------------------------------------------------------- YOLO
def bad_yolo(rng: np.random.Generator) -> str | bytes:
    """One malformed YOLO label file (a valid row plus one bad row)."""
    rows = [
        "0 0.5 0.5",
        "1 0.5 0.5 0.2 0.2 0.9",
        "cat 0.5 0.5 0.2 0.2",
        "0 0.5 half 0.2 0.2",
        f"{int(rng.integers(2, 50))} 0.5 0.5 0.2 0.2",
        "-1 0.5 0.5 0.2 0.2",
        "1.5 0.5 0.5 0.2 0.2",
        f"0 {rng.uniform(1.01, 5):.3f} 0.5 0.2 0.2",
        f"0 0.5 0.5 {-rng.uniform(0.01, 1):.3f} 0.2",
        "0 0.5 0.5 nan 0.2",
        "0 0.0 0.5 1.0 0.2",  # box half outside the image
    ]
    k = int(rng.integers(len(rows) + 1))
    if k == len(rows):
        return b"\xff\xfe\x00 not utf-8 \xff"
    lines = ["1 0.3 0.3 0.2 0.2", rows[k]]
    if rng.random() < 0.5:
        lines.reverse()
    return "\n".join(lines) + "\n"


def test_fuzz_yolo_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    for i in range(N_YOLO):
        case = tmp_path / f"case{i:03d}"
        tiny_png(case / "images" / f"img{i:03d}.png")
        (case / "labels").mkdir()
        data = bad_yolo(rng)
        label = case / "labels" / f"img{i:03d}.txt"
        label.write_bytes(data) if isinstance(data, bytes) else label.write_text(data)
        with pytest.raises(DatasetError) as info:
            YoloDataset(case / "images", case / "labels", CLASSES)
        assert label.name in str(info.value)
        ds = YoloDataset(case / "images", case / "labels", CLASSES, on_error="skip")
        assert len(ds) == 0 and ds.problems


# -------------------------------------------------------------------------------------- images
def _png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header claims a (huge) size; the pixel data is a tiny stub."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """Patch the SOF0 marker of a baseline JPEG to claim another size."""
    i = jpeg.index(b"\xff\xc0")
    return jpeg[: i + 5] + struct.pack(">HH", height, width) + jpeg[i + 9 :]


def broken_images(tmp_path: Path) -> dict[str, tuple[bytes, tuple[int, int] | None]]:
    """name -> (file bytes, expected (h, w) when the file is valid, else None)."""
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    jpg = cv2.imencode(".jpg", pixels)[1].tobytes()
    png = cv2.imencode(".png", pixels)[1].tobytes()
    cases: dict[str, tuple[bytes, tuple[int, int] | None]] = {
        "zero.jpg": (b"", None),
        "zero.png": (b"", None),
        "text.jpg": (b"this is not an image\n", None),
        "text.png": (b"<html></html>", None),
        "noise.jpg": (rng.integers(0, 256, 2048, dtype=np.uint8).tobytes(), None),
        "noise.png": (rng.integers(0, 256, 512, dtype=np.uint8).tobytes(), None),
        "pdf.jpeg": (b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", None),
        "header_only.jpg": (jpg[:20], None),
        "header_only.png": (png[:33], None),
        "huge.png": (_png_with_size(60000, 60000), None),
        "huge.jpg": (_jpeg_with_size(jpg, 30000, 30000), None),
        "ok.jpg": (jpg, (30, 40)),
        "ok.png": (png, (30, 40)),
    }
    for f in (0.2, 0.5, 0.8, 0.97):
        cases[f"trunc{int(f * 100)}.jpg"] = (jpg[: int(len(jpg) * f)], None)
        cases[f"trunc{int(f * 100)}.png"] = (png[: int(len(png) * f)], None)
    cases["no_eoi.jpg"] = (jpg[:-2], None)
    bad_crc = bytearray(png)
    bad_crc[len(png) // 2] ^= 0xFF
    cases["bad_crc.png"] = (bytes(bad_crc), None)
    cases["deep16.png"] = (cv2.imencode(".png", (pixels.astype(np.uint16) * 257))[1].tobytes(), (30, 40))
    cases["gray16.png"] = (cv2.imencode(".png", np.full((30, 40), 40000, np.uint16))[1].tobytes(), (30, 40))
    cases["rgba.png"] = (cv2.imencode(".png", np.dstack([pixels, np.zeros((30, 40), np.uint8)]))[1].tobytes(), (30, 40))
    cases["gray.jpg"] = (cv2.imencode(".jpg", pixels[..., 0])[1].tobytes(), (30, 40))
    buf = tmp_path / "_exif.jpg"
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(pixels).save(buf, exif=exif)
    cases["exif_rot.jpg"] = (buf.read_bytes(), (40, 30))
    Image.fromarray(pixels).convert("P").save(buf.with_suffix(".png"))
    cases["palette.png"] = (buf.with_suffix(".png").read_bytes(), (30, 40))
    return cases


def test_broken_images_raise_dataset_error_naming_the_file(tmp_path: Path) -> None:
    cases = broken_images(tmp_path)
    assert sum(exp is None for _, exp in cases.values()) >= 20 and len(cases) >= 28
    for name, (data, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        for fn in (read_image, probe_image):
            if expected is None:
                with pytest.raises(DatasetError) as info:
                    fn(path)
                assert name in str(info.value), (name, fn.__name__)
            else:
                out = fn(path)
                shape = out.shape[:2] if isinstance(out, np.ndarray) else out
                assert tuple(shape) == expected, name
        if expected is not None:
            img = read_image(path)
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    (tmp_path / "dir.jpg").mkdir()
    for missing in ("does_not_exist.jpg", "dir.jpg"):
        with pytest.raises(DatasetError, match=missing):
            read_image(tmp_path / missing)
    assert (read_image(tmp_path / "gray16.png") == 156).all()  # round(40000 / 257)


def test_check_dataset_lists_all_problems_at_once(tmp_path: Path) -> None:
    """A VOC folder with bad xmls, broken/missing images and size mismatches: everything reported."""
    root = tmp_path / "bench"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "classes.txt").write_text("cat\ndog\n")
    cases = broken_images(tmp_path)
    stems = []
    good = voc_text(good_objects())
    for i in range(5):  # good images
        stems.append(f"good{i}")
        tiny_png(root / "JPEGImages" / f"good{i}.png")
        (root / "JPEGImages" / f"good{i}.png").rename(root / "JPEGImages" / f"good{i}.jpg")
        (root / "Annotations" / f"good{i}.xml").write_text(good)
    broken = [n for n, (_, exp) in cases.items() if exp is None and n.endswith(".jpg")]
    for name in broken:
        stem = "img_" + Path(name).stem
        stems.append(stem)
        (root / "JPEGImages" / f"{stem}.jpg").write_bytes(cases[name][0])
        (root / "Annotations" / f"{stem}.xml").write_text(good)
    stems.append("no_image")
    (root / "Annotations" / "no_image.xml").write_text(good)
    stems.append("wrong_size")
    (root / "JPEGImages" / "wrong_size.jpg").write_bytes(cases["ok.jpg"][0])  # 30x40, xml says 50x60
    (root / "Annotations" / "wrong_size.xml").write_text(good)
    rng = np.random.default_rng(5)
    bad_xml = []
    for i in range(6):
        stem = f"badxml{i}"
        stems.append(stem)
        bad_xml.append(stem)
        tiny_png(root / "JPEGImages" / f"{stem}.png")
        (root / "JPEGImages" / f"{stem}.png").rename(root / "JPEGImages" / f"{stem}.jpg")
        data = bad_voc(rng)
        p = root / "Annotations" / f"{stem}.xml"
        p.write_bytes(data) if isinstance(data, bytes) else p.write_text(data)
    stems.append("no_xml")
    (root / "JPEGImages" / "no_xml.jpg").write_bytes(cases["ok.jpg"][0])
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("\n".join(stems) + "\n")

    report = check_dataset(root)
    assert not report.ok
    error_stems = {Path(p.file).stem for p in report.errors}
    assert error_stems == set(bad_xml) | {"no_xml"}
    broken_stems = {Path(p.file).stem for p in report.broken_images}
    assert broken_stems == {"img_" + Path(n).stem for n in broken} | {"no_image", "wrong_size"}
    assert report.num_images == 5 + len(broken) + 1  # usable annotations (broken pixels reported apart)
    assert report.class_histogram == {"cat": report.num_images, "dog": report.num_images}
    text = report.summary()
    assert all(s in text for s in bad_xml) and "PROBLEMS FOUND" in text
    # The loader itself raises on the first problem, naming the file.
    with pytest.raises(DatasetError, match=r"more problem"):
        VOCDataset(root, "trainval", ("cat", "dog"))
    assert check_dataset(tmp_path / "nowhere").errors  # unreadable root: reported, not raised


@pytest.mark.parametrize("class_names", [None, ("cat", "dog")])
def test_coco_categories_sharing_a_name_are_an_error(tmp_path: Path, class_names) -> None:
    """Labels are matched by name: two categories named "cat" would silently merge into one class."""
    images = tmp_path / "images"
    tiny_png(images / "a.png")
    tiny_png(images / "b.png")
    d = good_coco()
    d["categories"] = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 7, "name": "cat"}]
    path = _write(tmp_path / "instances_train.json", json.dumps(d))
    with pytest.raises(DatasetError, match=r"categories 1 and 7 share the name 'cat'") as info:
        CocoDataset(images, path, class_names=class_names)
    assert "instances_train.json" in str(info.value) and "categories[2].name" in str(info.value)
