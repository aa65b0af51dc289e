"""Every verb has --help; data check / generate / selfcheck through the CLI."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from mgdet.cli import build_parser, main


def _verbs(parser: argparse.ArgumentParser, prefix=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _verbs(sub, (*prefix, name))


def test_every_verb_has_help(capsys):
    verbs = list(_verbs(build_parser()))
    assert {("train",), ("eval",), ("detect",), ("data", "check"), ("data", "generate")} <= set(verbs)
    for verb in verbs:
        with pytest.raises(SystemExit) as e:
            main([*verb, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "usage: mgdet" in out
    # every option of every verb is explained
    for verb in verbs:
        parser = build_parser()
        for name in verb:
            parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        for action in parser._actions:
            if action.option_strings and action.dest != "help":
                assert action.help, f"mgdet {' '.join(verb)} {action.option_strings[0]} has no help text"


def test_data_check_good_and_broken(tiny_dataset, tmp_path, capsys):
    assert main(["data", "check", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "circle" in out
    root = tmp_path / "broken"
    shutil.copytree(tiny_dataset, root)
    (root / "JPEGImages" / "train_000001.jpg").write_bytes(b"")
    xml = root / "Annotations" / "train_000002.xml"
    xml.write_text(xml.read_text().replace("<xmin>", "<xmin>-", 1))
    assert main(["data", "check", str(root), "--split", "train"]) == 1
    out = capsys.readouterr().out
    assert "PROBLEMS FOUND" in out and "train_000001.jpg" in out and "train_000002.xml" in out


def test_data_generate_is_idempotent(tmp_path, capsys):
    args = ["data", "generate", "--out", str(tmp_path / "b"), "--size", "4", "--val-size", "2", "--no-progress"]
    assert main(args) == 0
    assert "generated" in capsys.readouterr().out
    assert main(args) == 0
    assert "already present" in capsys.readouterr().out


def test_selfcheck(capsys):
    assert main(["selfcheck", "--size", "128"]) == 0
    out = capsys.readouterr().out
    assert "mutual_guidance" in out and "2040 anchors" in out


def test_detect_missing_images_is_a_clear_error(tmp_path, capsys):
    from mgdet.engine.inference import collect_images

    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="image not found: .*nope.jpg"):
        collect_images([tmp_path / "nope.jpg"])
    with pytest.raises(FileNotFoundError, match="no images found in"):
        collect_images([tmp_path / "empty"])


def test_reproduce_seeds_option(capsys):
    parse = build_parser().parse_args
    assert parse(["reproduce", "--seeds", "3"]).seeds == [0, 1, 2]
    assert parse(["reproduce", "--seeds", "1,2"]).seeds == [1, 2]
    assert parse(["reproduce", "--seeds", "2,"]).seeds == [2]
    assert parse(["reproduce"]).seeds == [0, 1, 2]  # the default
    for bad, said in (("0", "a count of 0 seeds runs nothing"), ("x", "expected a count like 3")):
        with pytest.raises(SystemExit) as e:
            main(["reproduce", "--seeds", bad])
        assert e.value.code == 2 and said in capsys.readouterr().err


def test_data_check_reports_exif_rotated_images(tiny_dataset, tmp_path, capsys):
    """A 180-degree EXIF tag keeps the size, so nothing can tell whether the boxes were drawn on the stored or
    the displayed pixels: data check names such images (mgdet reads them as displayed)."""
    from PIL import Image

    root = tmp_path / "data"
    shutil.copytree(tiny_dataset, root)
    victim = root / "JPEGImages" / "train_000003.jpg"
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180 degrees for display
    with Image.open(victim) as im:
        im.convert("RGB").save(victim, exif=exif, quality=95)
    assert main(["data", "check", str(root), "--split", "train"]) == 0  # a warning, not a problem
    out = capsys.readouterr().out
    assert "OK" in out and "1 image(s) carry an EXIF orientation tag" in out
    assert "train_000003.jpg (orientation 3)" in out


def _short_png(path: Path, h: int = 40, w: int = 48) -> None:
    """A PNG whose header and chunk CRCs are valid but whose pixel data holds only half the rows."""
    import struct
    import zlib

    rows = np.random.default_rng(0).integers(0, 255, (h // 2, w * 3), dtype=np.uint8)
    raw = b"".join(b"\x00" + r.tobytes() for r in rows)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def test_data_check_decodes_the_pixels_and_finds_short_image_data(tmp_path, capsys):
    """A PNG with short pixel data passed `data check` (header scan) and failed mid-epoch (issue 22, item 14)."""
    root = tmp_path / "yolo"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    (root / "classes.txt").write_text("cat\n")
    cv2.imwrite(str(root / "images" / "good.png"), np.full((40, 48, 3), 90, np.uint8))
    _short_png(root / "images" / "short.png")
    for stem in ("good", "short"):
        (root / "labels" / f"{stem}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    assert main(["data", "check", str(root), "--detector", "none", "--headers-only", "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["data", "check", str(root), "--detector", "none", "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "short.png" in out and "could not be decoded" in out and "good.png" not in out
