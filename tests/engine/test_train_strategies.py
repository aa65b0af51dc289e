"""``mgdet train`` runs end to end with every strategy that is not in the paper (2 iterations each)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import yaml
from conftest import tiny_config

from mgdet.cli import main
from mgdet.engine.checkpoint import load_checkpoint
from mgdet.strategies import STRATEGY_TABLE

NEW = [s.name for s in STRATEGY_TABLE if not s.in_paper]


@pytest.mark.parametrize("model", ["retinanet", "fssd"])
@pytest.mark.parametrize("strategy", NEW)
def test_two_iterations_train_and_record_statistics(tiny_dataset: Path, tmp_path: Path, strategy: str, model: str):
    run = tmp_path / "run"
    cfg = tiny_config(tiny_dataset, run, epochs=1, max_iters=2, strategy=strategy)
    cfg["model"]["name"] = model
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["train", str(path), "--no-progress", "--no-tensorboard"]) == 0
    assert load_checkpoint(run / "last.pth")["iteration"] == 2
    with (run / "history.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert float(row["pos_cls_per_gt"]) > 0 and float(row["pos_reg_per_gt"]) > 0 and float(row["ign_per_gt"]) == 0
    if strategy != "mutual_guidance_dynamic":  # ATSS, task-aligned: the positives are the regression samples
        assert float(row["pos_cls_per_gt"]) == float(row["pos_reg_per_gt"]) and float(row["disagree"]) == 0
    # the authors' later rule counts the two tasks' samples independently (k from each task's qualities)
    assert float(row["loss"]) > 0
