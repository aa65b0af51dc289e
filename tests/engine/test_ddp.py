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


def test_torchrun_two_processes(tiny_dataset, tmp_path):
    run = tmp_path / "ddp"
    cfg = tiny_config(tiny_dataset, run, epochs=1, max_iters=3, eval_interval=0)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "mgdet", "train", str(path),
           "--no-progress", "--no-tensorboard"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    state = load_checkpoint(run / "last.pth")
    assert state["iteration"] == 3
    # one summary table: only rank 0 prints and writes
    assert proc.stdout.count("checkpoint") == 1
    assert all(not k.startswith("module.") for k in state["model"])  # saved without the DDP wrapper
