"""Every user mistake ends in one line on stderr and exit code 2 (no traceback); ``--debug`` shows it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mgdet.cli import main
from mgdet.errors import MgdetError


def _run(capsys, *argv: str) -> tuple[int, str]:
    try:
        rc = main(list(argv))
    except SystemExit as e:  # argparse usage errors
        rc = int(e.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err


def test_every_error_class_derives_from_one_base() -> None:
    from mgdet.data import DatasetError
    from mgdet.engine.checkpoint import CheckpointError
    from mgdet.engine.config import ConfigError
    from mgdet.engine.train import TrainingError
    from mgdet.models.pretrained import PretrainedHashError

    for cls, old in ((ConfigError, ValueError), (CheckpointError, RuntimeError), (DatasetError, ValueError),
                     (TrainingError, RuntimeError), (PretrainedHashError, RuntimeError)):  # fmt: skip
        assert issubclass(cls, MgdetError) and issubclass(cls, old)


@pytest.mark.parametrize(
    "argv, said",
    [
        (["detect", "C.pth", "I", "--out", "o", "--batch-size", "0"], "must be at least 1"),
        (["detect", "C.pth", "I", "--out", "o", "--batch-size", "-1"], "must be at least 1"),
        (["detect", "C.pth", "I", "--out", "o", "--device", "banana"], "unknown device 'banana'"),
        (["eval", "C.pth", "--score-thresh", "2"], "between 0 and 1"),
        (["export", "C.pth", "--onnx", "x.onnx", "--input-size", "0"], "between 32 and 2048"),
        (["export", "C.pth", "--onnx", "x.onnx", "--opset", "5"], "must be between 13 and 20"),
        (["selfcheck", "--size", "0"], "between 32 and 2048"),
        (["data", "generate", "--out", "x", "--size", "-3"], "must be between 1 and 5000000"),
    ],
)
def test_bad_option_values_are_usage_errors(capsys, argv: list[str], said: str) -> None:
    rc, err = _run(capsys, *argv)
    assert rc == 2 and said in err


def test_unreadable_files_are_one_line(tmp_path: Path, capsys, tiny_checkpoint: Path) -> None:
    junk = tmp_path / "random.pth"
    junk.write_bytes(bytes(range(256)) * 40)
    rc, err = _run(capsys, "eval", str(junk))
    assert rc == 2 and "not a torch checkpoint file" in err and "could run code" not in err
    fake_onnx = tmp_path / "model.onnx"
    fake_onnx.write_bytes(b"\x08\x07garbage")
    rc, err = _run(capsys, "eval", str(fake_onnx))
    assert rc == 2 and "--backend onnx" in err and "weights_only" not in err
    images = tmp_path / "imgs"
    images.mkdir()
    (images / "a.jpg").write_bytes((tiny_checkpoint.parent / "last.pth").read_bytes()[:10])
    rc, err = _run(capsys, "detect", str(tiny_checkpoint), str(images), "--out", str(tmp_path / "o"),
                   "--backend", "onnx")  # fmt: skip
    assert rc == 2 and "not an ONNX file" in err and "--backend torch" in err
    from mgdet.evaluation import load_eval_json

    with pytest.raises(MgdetError, match="not a json evaluation file"):
        load_eval_json(junk)
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(MgdetError):
        main(["--debug", "eval", str(tmp_path / "missing.pth")])


def test_unwritable_output_is_one_line(tmp_path: Path, capsys, tiny_checkpoint: Path, tiny_dataset: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc, err = _run(capsys, "data", "generate", "--out", str(blocker / "sub"), "--size", "1", "--no-progress")
    assert rc == 2 and str(blocker) in err and "error:" in err
    rc, err = _run(capsys, "eval", str(tiny_checkpoint), "--out", str(blocker), "--no-progress")
    assert rc == 2 and str(blocker) in err


@pytest.mark.parametrize(
    "field, value, said",
    [
        ("num_classes", -3, "num_classes = -3"),
        ("num_classes", 10**9, "num_classes = 1000000000"),
        ("num_classes", "7", "num_classes = '7'"),
        ("input_size", 10**6, "input_size"),
        ("neck_width", 10**7, "neck_width"),
    ],
)
def test_crafted_checkpoint_fields_are_refused(tmp_path: Path, capsys, tiny_checkpoint: Path, field, value, said):
    state = torch.load(tiny_checkpoint, weights_only=True)
    state["model_config"][field] = value
    bad = tmp_path / "bad.pth"
    torch.save(state, bad)
    rc, err = _run(capsys, "eval", str(bad), "--no-progress")
    assert rc == 2 and said in err


def test_empty_dataset_is_an_error(tmp_path: Path, capsys, tiny_dataset: Path) -> None:
    import shutil

    root = tmp_path / "d"
    shutil.copytree(tiny_dataset, root)
    (root / "ImageSets" / "Main" / "train.txt").write_text("")
    rc, err = _run(capsys, "data", "check", str(root), "--split", "train", "--detector", "none")
    assert rc == 1
    from mgdet.data import check_dataset

    assert not check_dataset(root, split="train").ok
    from mgdet.engine.builders import build_dataset
    from mgdet.engine.config import DataConfig

    with pytest.raises(MgdetError, match="has no images"):
        build_dataset(DataConfig(root=str(root), train_split="train"), train=True)


def test_data_check_accepts_a_vocdevkit_root(tmp_path: Path, capsys, tiny_dataset: Path) -> None:
    import shutil

    shutil.copytree(tiny_dataset, tmp_path / "VOCdevkit" / "VOC2007")
    rc, _ = _run(capsys, "data", "check", str(tmp_path / "VOCdevkit"), "--split", "07/val", "--detector", "none")
    assert rc == 0
    from mgdet.data import check_dataset

    report = check_dataset(tmp_path / "VOCdevkit", split="07/val")
    assert report.num_images == 6


def _photos_with_a_broken_one(tiny_dataset: Path, folder: Path) -> Path:
    """a.jpg, b_broken.jpg (not an image), c.jpg."""
    import shutil

    folder.mkdir()
    good = sorted((tiny_dataset / "JPEGImages").glob("*.jpg"))[:2]
    shutil.copy(good[0], folder / "a.jpg")
    (folder / "b_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    shutil.copy(good[1], folder / "c.jpg")
    return folder


def test_detect_stops_at_an_unreadable_image_and_keeps_the_results_before_it(
    tmp_path: Path, tiny_dataset: Path, tiny_checkpoint: Path, capsys
) -> None:
    photos = _photos_with_a_broken_one(tiny_dataset, tmp_path / "photos")
    out = tmp_path / "out"
    rc, err = _run(capsys, "detect", str(tiny_checkpoint), str(photos), "--out", str(out), "--batch-size", "1",
                   "--no-progress")  # fmt: skip
    assert rc == 2 and "b_broken.jpg" in err and len(err.strip().splitlines()) == 1
    records = json.loads((out / "detections.json").read_text())
    assert [Path(r["file"]).name for r in records] == ["a.jpg"]  # what was done before the error is kept


def test_detect_on_error_skip_counts_and_records_unreadable_images(
    tmp_path: Path, tiny_dataset: Path, tiny_checkpoint: Path, capsys
) -> None:
    photos = _photos_with_a_broken_one(tiny_dataset, tmp_path / "photos")
    out = tmp_path / "out"
    rc = main(["detect", str(tiny_checkpoint), str(photos), "--out", str(out), "--on-error", "skip", "--no-progress"])
    printed = capsys.readouterr().out
    assert rc == 0 and "skipped 1 unreadable image(s)" in printed and "b_broken.jpg" in printed
    records = json.loads((out / "detections.json").read_text())
    assert [Path(r["file"]).name for r in records] == ["a.jpg", "b_broken.jpg", "c.jpg"]
    assert "error" in records[1] and "detections" not in records[1]
    assert all("detections" in r for r in (records[0], records[2]))
    assert sorted(p.name for p in out.glob("*.jpg")) == ["a.jpg", "c.jpg"]


def test_onnx_detect_stream_skips_unreadable_images(tmp_path: Path, tiny_dataset: Path) -> None:
    """The onnx backend's stream (deploy.detect_paths) follows the same rule as the torch one."""
    import numpy as np

    from mgdet.data.errors import DatasetError
    from mgdet.deploy import detect_paths

    class Backend:  # stands in for OnnxDetector: one empty result per image
        def detect(self, images):
            return [{"boxes": np.zeros((0, 4)), "scores": np.zeros(0), "labels": np.zeros(0, int)} for _ in images]

    photos = _photos_with_a_broken_one(tiny_dataset, tmp_path / "photos")
    paths = sorted(photos.iterdir())
    got = list(detect_paths(Backend(), paths, batch_size=8, progress=False, on_error="skip"))
    assert [(p.name, im is None) for p, im, _ in got] == [("a.jpg", False), ("b_broken.jpg", True), ("c.jpg", False)]
    assert "b_broken.jpg" in got[1][2]["error"]
    with pytest.raises(DatasetError, match="b_broken.jpg"):
        list(detect_paths(Backend(), paths, batch_size=8, progress=False))


def test_detect_takes_odd_file_names_and_skips_what_is_no_image_file(
    tmp_path: Path, tiny_dataset: Path, tiny_checkpoint: Path
) -> None:
    """A non-UTF-8 byte in a name used to crash detect in OpenCV's writer (segfault, no detections.json); a pipe
    or socket named like an image aborted it even with --on-error skip; a sparse multi-GB ".jpg" was read whole
    (issue 22, items 6, 7 and 14). Run in a child process: the old failure was a crash of the interpreter."""
    import os
    import shutil
    import socket
    import subprocess
    import sys

    photos = tmp_path / "photos"
    photos.mkdir()
    src = sorted((tiny_dataset / "JPEGImages").glob("val_*.jpg"))[0]
    odd = os.fsencode(photos) + b"/caf\xe9.jpg"
    shutil.copy(src, odd)
    shutil.copy(src, photos / "ok.jpg")
    os.mkfifo(photos / "pipe.jpg")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(photos / "sock.jpg"))
    with open(photos / "sparse.jpg", "wb") as f:  # 3 GiB on paper, a few KiB on disk
        f.write(src.read_bytes())
        f.truncate(3 << 30)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mgdet", "detect", str(tiny_checkpoint), str(photos), "--out", str(out),
           "--on-error", "skip", "--no-progress"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, timeout=300)
    sock.close()
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    assert (
        b"skipped 3 unreadable image(s)" in proc.stdout and "caf\N{REPLACEMENT CHARACTER}.jpg".encode() in proc.stdout
    )
    records = {os.fsencode(Path(r["file"]).name): r for r in json.loads((out / "detections.json").read_text())}
    assert sorted(records) == [b"caf\xe9.jpg", b"ok.jpg", b"pipe.jpg", b"sock.jpg", b"sparse.jpg"]
    assert (
        "not a regular file" in records[b"pipe.jpg"]["error"] and "not a regular file" in records[b"sock.jpg"]["error"]
    )
    assert "too large" in records[b"sparse.jpg"]["error"]
    assert os.path.isfile(os.fsencode(out) + b"/caf\xe9.jpg") and "detections" in records[b"caf\xe9.jpg"]
    # without --on-error skip: one line naming the pipe, exit 2
    again = [*cmd[:7], str(tmp_path / "out2"), "--no-progress"]
    proc = subprocess.run(again, capture_output=True, timeout=300, text=True, errors="replace")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "pipe.jpg: not a regular file" in proc.stderr


def test_detect_batches_respect_a_pixel_budget(tmp_path: Path) -> None:
    """4 small PNGs of huge dimensions used to be decoded in one batch (3.4 GB; issue 22, item 14): batches now
    hold at most BATCH_PIXELS decoded pixels, a larger image alone, in the input order."""
    import cv2
    import numpy as np

    from mgdet.deploy import BATCH_PIXELS, pixel_batches

    sizes = {"a": (20, 20), "b": (6000, 6000), "c": (6000, 6000), "d": (9000, 9000), "e": (20, 20), "f": (20, 20)}
    paths = []
    for name, (h, w) in sizes.items():
        path = tmp_path / f"{name}.png"
        assert cv2.imwrite(str(path), np.zeros((h, w), np.uint8))  # flat: a few KB on disk
        paths.append(path)
    (tmp_path / "g.png").write_bytes(b"not an image")  # counts as 0 pixels; reading it fails later
    paths.append(tmp_path / "g.png")
    groups = [[p.stem for p in g] for g in pixel_batches(paths, batch_size=8)]
    assert groups == [["a", "b"], ["c"], ["d"], ["e", "f", "g"]]
    for g in pixel_batches(paths, batch_size=8):
        pixels = sum(sizes.get(p.stem, (0, 0))[0] * sizes.get(p.stem, (0, 0))[1] for p in g)
        assert pixels <= BATCH_PIXELS or len(g) == 1
    assert [len(g) for g in pixel_batches(paths, batch_size=2)] == [2, 1, 1, 2, 1]
