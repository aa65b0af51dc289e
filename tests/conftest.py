"""Shared fixtures: a tiny generated dataset (VOC xml + COCO json layout) and a tiny training config."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import pytest
import torch

torch.set_num_threads(min(2, len(os.sched_getaffinity(0))))  # the cores this process may use

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """16 train + 6 val images of 96 px from the benchmark generator (both VOC and COCO annotations)."""
    from mgdet.data.benchmark import generate_benchmark

    root = tmp_path_factory.mktemp("tiny_bench")
    generate_benchmark(root, seed=3, num_train=16, num_val=6, image_size=96)
    return root


def tiny_config(root: Path, out: Path, **train) -> dict:
    """A config dict that trains a very small detector in a few seconds on a CPU."""
    t = {"strategy": "mutual_guidance", "epochs": 2, "batch_size": 4, "lr": 0.01, "warmup_iters": 2,
         "eval_interval": 1, "seed": 0}  # fmt: skip
    t.update(train)
    return {
        "model": {"name": "retinanet", "backbone": "mobilenet_v2", "width": 16},
        "data": {
            "format": "voc",
            "root": str(root),
            "train_split": "train",
            "val_split": "val",
            "input_size": 64,
            "num_workers": 0,
        },  # fmt: skip
        "train": t,
        "eval": {"batch_size": 8, "score_thresh": 0.01},
        "output_dir": str(out),
        "device": "cpu",
    }


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_dataset, tmp_path_factory) -> Path:
    """An untrained checkpoint of the tiny config (written as training writes it), in its own run folder."""
    from mgdet.engine.builders import model_kwargs
    from mgdet.engine.checkpoint import save_checkpoint
    from mgdet.engine.config import from_dict
    from mgdet.models import build_detector

    run = tmp_path_factory.mktemp("tiny_run")
    cfg = from_dict(tiny_config(tiny_dataset, run))
    names = [n.strip() for n in (tiny_dataset / "classes.txt").read_text().splitlines() if n.strip()]
    mkw = model_kwargs(cfg, len(names))
    torch.manual_seed(0)
    det = build_detector(**mkw)
    state = {"model": det.state_dict(), "config": cfg.to_dict(), "model_config": mkw, "class_names": names,
             "epoch": 1, "iteration": 4}  # fmt: skip
    return save_checkpoint(state, run / "last.pth")
