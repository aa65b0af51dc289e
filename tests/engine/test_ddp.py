"""Two CPU processes under torchrun (gloo): DDP training for a few steps, rank-0 writes the outputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import tiny_config

from mgdet.engine.checkpoint import load_checkpoint


def _torchrun_train(cfg: dict, tmp_path: Path, timeout: int) -> subprocess.CompletedProcess:
    """``torchrun --nproc_per_node 2 -m mgdet train`` on ``cfg`` (one thread per process)."""
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "mgdet", "train", str(path),
           "--no-progress", "--no-tensorboard"]  # fmt: skip
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


def test_torchrun_two_processes(tiny_dataset, tmp_path):
    run = tmp_path / "ddp"
    cfg = tiny_config(tiny_dataset, run, epochs=1, max_iters=3, eval_interval=0)
    proc = _torchrun_train(cfg, tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = load_checkpoint(run / "last.pth")
    assert state["iteration"] == 3
    # one summary table: only rank 0 prints and writes
    assert proc.stdout.count("checkpoint") == 1
    assert all(not k.startswith("module.") for k in state["model"])  # saved without the DDP wrapper


def test_torchrun_skips_an_undecodable_image_on_every_rank_together(tiny_dataset, tmp_path):
    """One rank's batch is empty (its only image fails to decode, data.on_error=skip): every rank skips that
    step together instead of one waiting forever in the gradient all-reduce (issue 22, item 5)."""
    data = tmp_path / "data"
    shutil.copytree(tiny_dataset, data)
    victim = sorted((data / "JPEGImages").glob("train_*.jpg"))[5]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # header intact, no end marker
    run = tmp_path / "ddp"
    cfg = tiny_config(data, run, epochs=1, batch_size=2, eval_interval=0)  # one image per rank and step
    cfg["data"].update(on_error="skip", check_images=False)  # the failure shows up only when decoding
    try:
        proc = _torchrun_train(cfg, tmp_path, timeout=240)
    except subprocess.TimeoutExpired:
        raise AssertionError("torchrun hung: the ranks disagreed on skipping the empty batch") from None
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert victim.name in proc.stdout + proc.stderr  # the skipped image is reported
    state = load_checkpoint(run / "last.pth")
    assert state["iteration"] == 7  # 8 steps per rank, the one with the empty batch skipped on both ranks
