"""End to end on CPU: train -> checkpoint -> resume -> eval -> detect, through the CLI; exact resume."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import tiny_config

from mgdet.cli import main
from mgdet.engine.checkpoint import load_checkpoint


def _write(cfg: dict, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def _history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as f:
        return list(csv.DictReader(f))


def test_train_resume_eval_detect(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = _write(tiny_config(tiny_dataset, run), tmp_path / "tiny.yaml")
    assert main(["train", str(cfg), "--no-progress", "--no-tensorboard"]) == 0
    out = capsys.readouterr().out
    assert "AP75" in out and "checkpoint" in out
    assert re.search(r"skipped steps \(non-finite\)\s*[|│]\s*0\s", out)  # always reported, also when 0
    rows = _history(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["AP"] != "" and rows[1]["AP"] != ""  # evaluated every epoch
    assert float(rows[0]["pos_cls_per_gt"]) > 0 and 0 <= float(rows[0]["disagree"]) <= 1
    # untrained head: the class prior (sigmoid(bias) = 0.01) is what positives score
    assert 0.0 < float(rows[0]["pos_score_median"]) < 0.2 and 0.0 < float(rows[0]["pos_score_mean"]) < 0.2
    for name in ("last.pth", "best.pth", "config.yaml"):
        assert (run / name).is_file()
    state = load_checkpoint(run / "last.pth")
    assert state["epoch"] == 2 and state["iteration"] == 8

    # resume continues where it stopped: one more epoch
    assert main(["train", str(cfg), "train.epochs=3", "--resume", "auto", "--no-progress", "--no-tensorboard"]) == 0
    rows3 = _history(run)
    assert [r["epoch"] for r in rows3] == ["1", "2", "3"]
    assert rows3[0]["loss"] == rows[0]["loss"]
    assert load_checkpoint(run / "last.pth")["iteration"] == 12

    # eval
    assert main(["eval", str(run / "last.pth"), "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert {"AP", "AP50", "AP75", "voc07_map50"} <= set(metrics["metrics"])
    assert (tmp_path / "ev" / "detections_coco.json").is_file()

    # detect on a folder of images
    images = tiny_dataset / "JPEGImages"
    assert main(["detect", str(run / "last.pth"), str(images), "--out", str(tmp_path / "det"),
                 "--no-progress", "--show-thresh", "0.0"]) == 0  # fmt: skip
    dets = json.loads((tmp_path / "det" / "detections.json").read_text())
    assert len(dets) == 22 and all("detections" in d for d in dets)
    assert len(list((tmp_path / "det").glob("*.jpg"))) == 22


def test_train_on_coco_layout(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "run", epochs=1, max_iters=2, strategy="iou")
    cfg["data"].update(format="coco", train_split="train", val_split="val")
    assert main(["train", str(_write(cfg, tmp_path / "c.yaml")), "--no-progress", "--no-tensorboard"]) == 0
    assert load_checkpoint(tmp_path / "run" / "last.pth")["iteration"] == 2


def test_bad_config_is_a_clear_cli_error(tiny_dataset, tmp_path, capsys):
    cfg = _write(tiny_config(tiny_dataset, tmp_path / "run"), tmp_path / "c.yaml")
    assert main(["train", str(cfg), "train.epoch=3"]) == 2
    assert "did you mean 'train.epochs'" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.pth")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def _spawn(cfg: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    args = [sys.executable, "-m", "mgdet", "train", str(cfg), "--no-progress", "--no-tensorboard", *extra]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(pred, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    t0 = time.time()
    while not pred():
        if proc.poll() is not None:
            raise AssertionError(f"training ended early:\n{proc.stdout.read()}")
        if time.time() - t0 > timeout:
            proc.kill()
            raise AssertionError("timed out")
        time.sleep(0.05)


def _weights(path: Path) -> dict:
    return load_checkpoint(path)["model"]


@pytest.mark.parametrize("how", ["sigkill_between_epochs", "sigint_mid_epoch"])
def test_interrupted_run_resumes_exactly(tiny_dataset, tmp_path, how):
    """A run killed (SIGKILL) or interrupted (SIGINT, mid-epoch) and resumed ends bit-identical to an
    uninterrupted run with the same seed: same per-epoch losses, same final weights."""
    base = tiny_config(tiny_dataset, tmp_path / "ref", epochs=3, eval_interval=0)
    ref_cfg = _write(base, tmp_path / "ref.yaml")
    ref = _spawn(ref_cfg)
    assert ref.wait(timeout=300) == 0, ref.stdout.read()

    run = tmp_path / "cut"
    cut_cfg = _write({**base, "output_dir": str(run)}, tmp_path / "cut.yaml")
    proc = _spawn(cut_cfg)
    if how == "sigkill_between_epochs":
        _wait_for(lambda: (run / "history.csv").is_file(), proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    else:
        _wait_for(lambda: (run / "history.csv").is_file(), proc)
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=120)[0]
        assert proc.returncode == 130, out
        assert "interrupted" in out
        state = load_checkpoint(run / "last.pth")
        assert state["epoch_iter"] > 0 or state["epoch"] >= 1
    resumed = _spawn(cut_cfg, "--resume", "auto")
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read()

    ref_rows, cut_rows = _history(tmp_path / "ref"), _history(run)
    keys = ("epoch", "iter", "loss", "loss_cls", "loss_reg", "pos_cls_per_gt", "pos_reg_per_gt", "disagree")
    assert [[r[k] for k in keys] for r in cut_rows] == [[r[k] for k in keys] for r in ref_rows]
    a, b = _weights(tmp_path / "ref" / "last.pth"), _weights(run / "last.pth")
    assert all(torch.equal(a[k], b[k]) for k in a)
