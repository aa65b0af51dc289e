"""Sizes beyond the documented limits (mgdet.limits) are one-line usage errors before anything is allocated,
instead of running out of memory (issue 22, item 7)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from mgdet.cli import main
from mgdet.limits import MAX_INPUT_SIZE, MAX_WIDTH


def _rc(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse usage errors
        return int(e.code or 0)


@pytest.mark.parametrize(
    "argv",
    [
        ["selfcheck", "--size", "100000"],
        ["export", "CKPT", "--onnx", "OUT/x.onnx", "--input-size", "99999"],
        ["demo", "--size", "99968", "--no-train"],
        ["data", "generate", "--out", "OUT/bench", "--size", "1000000000000"],
    ],
)
def test_sizes_beyond_the_limits_are_usage_errors(argv, tmp_path, tiny_checkpoint, capsys):
    argv = [a.replace("CKPT", str(tiny_checkpoint)).replace("OUT", str(tmp_path)) for a in argv]
    assert _rc(argv) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]  # argparse: the usage, then one error line
    assert "must be between" in last and ("pixels" in last or "between 1 and 5000000" in last)
    assert "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing written


def test_a_checkpoint_claiming_a_huge_width_is_refused_before_building(tmp_path, tiny_checkpoint, capsys):
    from mgdet.engine.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(tiny_checkpoint)
    state["model_config"]["neck_width"] = 4096  # used to pass and take 5.3 GB when built
    crafted = save_checkpoint(state, tmp_path / "crafted.pth")
    assert _rc(["eval", str(crafted), "--out", str(tmp_path / "ev"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"model_config.neck_width = 4096: expected an integer from 1 to {MAX_WIDTH}" in err
    state["model_config"]["neck_width"] = 16
    state["model_config"]["input_size"] = MAX_INPUT_SIZE + 32
    crafted = save_checkpoint(state, tmp_path / "crafted2.pth")
    assert _rc(["export", str(crafted), "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "model_config.input_size" in capsys.readouterr().err


def test_generate_overwrite_of_a_record_claiming_a_trillion_images_ends(tmp_path, tiny_dataset):
    """``data generate --overwrite`` used to list 10^12 file names from a damaged benchmark.json (a hang); it now
    removes the generator's files that are there, and only those."""
    data = tmp_path / "bench"
    shutil.copytree(tiny_dataset, data)
    meta = json.loads((data / "benchmark.json").read_text())
    meta["params"]["num_train"] = 10**12
    (data / "benchmark.json").write_text(json.dumps(meta))
    (data / "JPEGImages" / "mine.jpg").write_bytes(b"a user's file")
    cmd = [sys.executable, "-m", "mgdet", "data", "generate", "--out", str(data), "--overwrite", "--size", "3",
           "--val-size", "2", "--no-progress"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = sorted(p.name for p in (data / "JPEGImages").iterdir())
    assert names == ["mine.jpg", *(f"train_{i:06d}.jpg" for i in range(3)), *(f"val_{i:06d}.jpg" for i in range(2))]
    assert json.loads((data / "benchmark.json").read_text())["params"]["num_train"] == 3
