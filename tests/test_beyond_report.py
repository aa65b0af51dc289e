"""scripts/beyond_report.py (issue 25's table): means, paired differences on shared seeds, and no overwrite."""

from __future__ import annotations

import json
import sys

import pytest
from conftest import load_script


def _module():
    return load_script("beyond_report")


def _run(rule: str, seed: int, ap: float, ap75: float) -> dict:
    metrics = {"AP": ap, "AP50": 60.0, "AP75": ap75, "APs": 1.0, "APm": 2.0, "APl": 3.0, "misalign": 17.0}
    return {"detector": "retinanet_mbv2", "rule": rule, "seed": seed, "metrics": metrics, "train_min": 20.0,
            "machine": "CPU", "source": "test"}  # fmt: skip


def test_means_and_paired_differences_use_shared_seeds(tmp_path):
    mod = _module()
    runs = [_run("mg", 0, 42.0, 48.0), _run("mg", 1, 44.0, 50.0), _run("mg", 2, 43.0, 49.0),
            _run("tal", 0, 45.0, 51.0), _run("tal", 2, 44.0, 50.0)]  # fmt: skip
    mod.report(runs, tmp_path / "t")
    md = (tmp_path / "t.md").read_text(encoding="utf-8")
    assert "| Mutual Guidance (paper) | 0,1,2 | 43.0 ± 1.0 |" in md
    # TAL - MG on seeds 0 and 2 only: (+3.0, +1.0) -> +2.0
    assert "| task-aligned (TOOD) | +2.0 (s0 +3.0, s2 +1.0) | +2.0 (s0 +3.0, s2 +1.0) |" in md
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["means"]["retinanet_mbv2"]["tal"]["AP"] == pytest.approx(44.5)
    assert (tmp_path / "t.png").stat().st_size > 1000


def test_the_committed_runs_give_a_table_and_an_earlier_table_is_kept(tmp_path, monkeypatch, capsys):
    mod = _module()
    monkeypatch.setattr(sys, "argv", ["beyond_report.py", "--out", str(tmp_path / "b")])
    mod.main()
    md = (tmp_path / "b.md").read_text(encoding="utf-8")
    assert "| task-aligned (TOOD) | 0,1,2 | 43.9 ± 1.5 |" in md  # docs/results/assigners.md, same runs
    with pytest.raises(SystemExit, match="--overwrite"):
        mod.main()


def test_baseline_seeds_come_from_both_the_h200_runs_and_the_cpu_runs(tmp_path, monkeypatch):
    mod = _module()
    metrics = {k: 0.5 for k in mod.METRICS}
    for folder, seed in (("docs/results/h200_runs/runs/fssd_mbv2_tal_s0", 0),
                         ("docs/results/beyond_runs/tal/fssd_mbv2_tal_s1", 1),
                         ("docs/results/beyond_runs/mg_aligned/fssd_mbv2_mg_s0", 0)):  # fmt: skip
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "metrics.json").write_text(
            json.dumps({"seed": seed, "metrics": metrics, "train_time_s": 60, "machine": "AMD EPYC"})
        )
    monkeypatch.setattr(mod, "ROOT", tmp_path)
    monkeypatch.setattr(mod, "BEYOND", tmp_path / "docs/results/beyond_runs")
    got = sorted((r["rule"], r["seed"], r["source"].split("/")[2]) for r in mod.load_runs())
    assert got == [("mg_aligned", 0, "beyond_runs"), ("tal", 0, "h200_runs"), ("tal", 1, "beyond_runs")]


def test_the_readme_headline_rows_match_the_committed_runs():
    """Every `AP ± std / AP75` cell of the README's beyond-the-paper table is what the committed runs give."""
    mod = _module()
    runs = mod.load_runs()
    readme = (mod.ROOT / "README.md").read_text(encoding="utf-8")
    rows = {  # README label start -> rule key of scripts/beyond_report.py
        "| static IoU (paper's baseline) |": "iou",
        "| Mutual Guidance (paper) |": "mg",
        "| task-aligned (TOOD) |": "tal",
        "| the authors' later rule (`mgd`) |": "mgd",
        "| MG + soft target (`mg_soft_target`) |": "mg_soft",
        "| MG, L2C by p·u⁶ (`mg_metric: aligned`) |": "mg_aligned",
        "| MG, ramp from static (`mg_ramp: 0.3`) |": "mg_ramp",
        "| **MG p·u⁶, regression on its cls positives**": "mg_aligned_shared",
    }
    for label, rule in rows.items():
        line = next(ln for ln in readme.splitlines() if ln.startswith(label) and ln.count("|") == 4)
        cells = [c.strip().strip("*") for c in line.split("|")[2:4]]
        for det, cell in zip(("retinanet_mbv2", "fssd_mbv2"), cells):
            got = [r for r in runs if r["detector"] == det and r["rule"] == rule]
            assert len(got) == 3, (det, rule)
            ap75 = sum(r["metrics"]["AP75"] for r in got) / 3
            assert cell == f"{mod._mean_std([r['metrics']['AP'] for r in got])} / {ap75:.1f}", (det, rule)
