"""``mgdet demo`` end to end (``--quick``) and the resumable ``mgdet reproduce`` grid, on a tiny benchmark."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from pathlib import Path

import pytest
import yaml

from mgdet.cli import main
from mgdet.demo.pipeline import QUICK_BENCHMARK, ensure_benchmark, run_reproduce
from mgdet.demo.recipe import BENCHMARK_DETECTORS, STRATEGY_ABBR, benchmark_recipe, grid_config, parse_strategy
from mgdet.demo.report import NOTES_MARKER, write_grid_results
from mgdet.demo.runner import RunRecord, deltas, summarize
from mgdet.engine.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny generated benchmark shared by the tests of this file."""
    root = tmp_path_factory.mktemp("bench") / "benchmark"
    ensure_benchmark(root, quick=True, progress=False, log=lambda s: None)
    return root


def test_quick_benchmark_is_generated_once(bench: Path) -> None:
    train_ids = (bench / "ImageSets" / "Main" / "train.txt").read_text().split()
    assert len(train_ids) == QUICK_BENCHMARK["num_train"]
    lines: list[str] = []
    assert ensure_benchmark(bench, quick=True, progress=False, log=lines.append) == bench
    assert "already there" in lines[0]


@pytest.fixture(scope="module")
def demo_out(bench: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """``mgdet demo --quick`` run once through the CLI: (output folder, printed text)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["demo", "--quick", "--out", str(out), "--data", str(bench), "--no-progress"])
    assert rc == 0
    return out, buf.getvalue()


def test_demo_cli_quick_writes_report_and_table(demo_out: tuple[Path, str]) -> None:
    """The quick demo evaluates the shipped zoo pair now (on the tiny split), trains both rules for a few steps
    and writes a report that says which numbers were computed now and which were shipped."""
    out, printed = demo_out
    for word in ("static IoU matching", "Mutual Guidance", "zoo:retinanet_mbv2_iou", "zoo:retinanet_mbv2_mg",
                 "evaluated now", "AP when shipped", "trained now", "AP75", "APs", "misalign", "train time",
                 "report.md"):  # fmt: skip
        assert word in printed, word
    report = out / "report"
    for name in ("report.md", "table.png", "curves.png", "detections_1.png", "detections_2.png"):
        assert (report / name).is_file() and (report / name).stat().st_size > 0, name
    md = (report / "report.md").read_text()
    first = md.splitlines()[2]  # the headline: what MG does, from the live evaluation
    assert first.startswith("**Mutual Guidance vs static IoU matching") and "evaluated now" in first
    assert "this demo took" in md and "logical cores" in md and "**shipped**: zoo:retinanet_mbv2_iou" in md
    assert "![curves](curves.png)" in md and "| Mutual Guidance" in md and "## Trained now:" in md
    for run in ("retinanet_mbv2_iou_s0", "retinanet_mbv2_mg_s0"):
        rec = json.loads((out / "live_quick" / "runs" / run / "metrics.json").read_text())
        assert set(rec["metrics"]) >= {"AP", "AP50", "AP75", "APs", "APm", "APl", "misalign"}
        cfg = yaml.safe_load((out / "live_quick" / "runs" / run / "config.yaml").read_text())
        assert cfg["train"]["seed"] == 0 and cfg["model"]["pretrained"] == "offline"


def test_reproduce_is_resumable(bench: Path, demo_out: tuple[Path, str]) -> None:
    """The demo's two runs are cells of the reproduce grid: finished ones are skipped, an unfinished one
    (checkpoint but no metrics.json) resumes; results.json/md/png are written with mean ± std."""
    out = demo_out[0] / "live_quick"
    kwargs = dict(out=out, detectors=["retinanet_mbv2"], strategies=["iou", "mg"], seeds=[0], data=bench,
                  quick=True, progress=False)  # fmt: skip
    iou_dir, mg_dir = out / "runs" / "retinanet_mbv2_iou_s0", out / "runs" / "retinanet_mbv2_mg_s0"
    kept = (iou_dir / "metrics.json").read_text()
    (mg_dir / "metrics.json").unlink()  # MG looks interrupted after its last checkpoint
    log: list[str] = []
    grid, files = run_reproduce(**kwargs, log=log.append)
    assert not grid.interrupted and len(grid.records) == 2
    assert any("run 1/2: retinanet_mbv2_iou_s0 finished earlier" in s and "skipped" in s for s in log)
    assert any("run 2/2: retinanet_mbv2_mg_s0 (resuming from last.pth)" in s for s in log)
    assert (iou_dir / "metrics.json").read_text() == kept
    assert json.loads((mg_dir / "metrics.json").read_text())["resumed"] is True
    for key in ("json", "md", "png"):
        assert files[key].is_file()
    md = files["md"].read_text()
    assert "±" in md and "Mutual Guidance" in md and "MG − IoU" in md
    data = json.loads(files["json"].read_text())
    assert len(data["runs"]) == 2 and {s["strategy"] for s in data["summary"]} == {"iou", "mutual_guidance"}
    # geometry and the positives' class score are recorded with the results
    cov = data["anchor_coverage"]["retinanet_mbv2"]
    assert 0.0 <= cov["at_04"] <= 1.0 and cov["at_04"] >= cov["at_05"] and cov["num_boxes"] > 0
    assert "anchor coverage" in md and "pos p median" in md
    assert all(0.0 < r["pos_score_median"] < 1.0 for r in data["runs"])

    log.clear()
    grid, _ = run_reproduce(**kwargs, log=log.append)  # everything finished now: nothing is trained
    assert len(grid.records) == 2 and all(r.skipped for r in grid.records)
    assert sum("skipped" in s for s in log) == 2

    # another recipe (here: one more epoch) never reuses these runs as its own
    with pytest.raises(ConfigError, match=r"retinanet_mbv2_iou_s0 there was trained with another configuration "
                                          r"\(train.epochs: 2 -> 3\); give --out a new folder"):  # fmt: skip
        run_reproduce(**{**kwargs, "epochs": 3}, log=log.append)
    assert (iou_dir / "metrics.json").read_text() == kept

    # --report-only: a grid trained in parts elsewhere is summarised; unfinished cells are listed, not trained
    log.clear()
    grid, files = run_reproduce(**{**kwargs, "seeds": [0, 1]}, report_only=True, log=log.append)
    assert len(grid.records) == 2 and grid.pending == ["retinanet_mbv2_iou_s1", "retinanet_mbv2_mg_s1"]
    assert not (out / "runs" / "retinanet_mbv2_iou_s1" / "last.pth").exists()
    md = files["md"].read_text()
    assert "2 / 4 (not trained: retinanet_mbv2_iou_s1, retinanet_mbv2_mg_s1)" in md
    # each run records the machine it was trained on, and the results name it
    machine = json.loads((mg_dir / "metrics.json").read_text())["machine"]
    assert "logical cores" in machine and f"**runs trained on**: {machine}" in md


def _record(strategy: str, seed: int, ap: float, ap75: float) -> RunRecord:
    metrics = {"AP": ap, "AP50": ap + 0.2, "AP75": ap75, "APs": 0.1, "APm": 0.2, "APl": 0.3, "misalign": 0.05}
    return RunRecord(f"r_{strategy}_{seed}", "retinanet_mbv2", strategy, seed, metrics, 100.0, 110.0, 6, 192, "")


def test_summary_mean_std_and_paired_deltas() -> None:
    recs = [_record("iou", 0, 0.40, 0.40), _record("iou", 1, 0.42, 0.44),
            _record("mutual_guidance", 0, 0.43, 0.45), _record("mutual_guidance", 1, 0.44, 0.47)]  # fmt: skip
    (iou, mg) = summarize(recs)
    assert iou["n"] == 2 and math.isclose(iou["mean"]["AP"], 0.41) and math.isclose(iou["std"]["AP"], 0.02**0.5 / 10)
    (d,) = deltas(recs)
    assert (
        d["strategy"] == "mutual_guidance"
        and math.isclose(d["mean"]["AP"], 2.5)
        and math.isclose(d["mean"]["AP75"], 4.0)
    )
    assert math.isclose(d["paired_std"]["AP"], 0.5**0.5)  # per-seed differences 3.0 and 2.0 points


def test_results_rewrite_keeps_hand_written_notes(tmp_path: Path) -> None:
    recs = [_record("iou", 0, 0.40, 0.40), _record("mutual_guidance", 0, 0.43, 0.45)]
    files = write_grid_results(recs, tmp_path, {"command": "`x`"}, stem="bench")
    first = files["md"].read_text()
    assert "MG − IoU" in first and NOTES_MARKER not in first
    notes = NOTES_MARKER + "\n\n## What this shows\n\nWritten by hand.\n"
    files["md"].write_text(first.replace("# Table 1", "# Old table") + "\n" + notes)
    write_grid_results([*recs, _record("iou", 1, 0.42, 0.44)], tmp_path, {"command": "`y`"}, stem="bench")
    text = files["md"].read_text()
    assert text.endswith(notes) and text.count(NOTES_MARKER) == 1  # notes kept once, at the end
    assert "# Old table" not in text and "`y`" in text and "r_iou_1" in text  # the generated part is new


@pytest.mark.parametrize("detector", BENCHMARK_DETECTORS)
def test_benchmark_configs_are_the_recipe(detector: str) -> None:
    """configs/benchmark/*.yaml hold the built-in recipe; the strategies of a detector differ only in strategy."""
    base = None
    for strategy, abbr in STRATEGY_ABBR.items():
        path = REPO / "configs" / "benchmark" / f"{detector}_{abbr}.yaml"
        data = yaml.safe_load(path.read_text())
        expected = benchmark_recipe(detector, strategy, 0, data["data"]["root"], data["output_dir"])
        assert data == expected
        cfg = load_config(path)
        assert cfg.train.strategy == strategy
        data["train"].pop("strategy")
        data.pop("output_dir")
        base = base or data
        assert data == base


def test_grid_config_and_strategy_names(tmp_path: Path) -> None:
    cfg = grid_config("fssd_mbv2", "c2l", 3, tmp_path / "x", "/data/b", epochs=2, overrides=["train.lr=0.01"])
    assert (cfg.model.name, cfg.train.strategy, cfg.train.seed, cfg.train.epochs, cfg.train.lr) == (
        "fssd", "classify_to_localize", 3, 2, 0.01)  # fmt: skip
    assert cfg.data.root == "/data/b" and cfg.output_dir == str(tmp_path / "x")
    assert parse_strategy("mg") == parse_strategy("mutual_guidance") == "mutual_guidance"
    assert parse_strategy("tal") == "task_aligned" and parse_strategy("atss") == "atss"
    with pytest.raises(ConfigError):
        parse_strategy("atss2")
    with pytest.raises(ConfigError, match="config-dir"):
        grid_config("retinanet_r18", "iou", 0, tmp_path)
    (tmp_path / "retinanet_r18_iou.yaml").write_text("model: {name: retinanet, backbone: resnet18}\n")
    cfg = grid_config("retinanet_r18", "iou", 1, tmp_path / "o", config_dir=tmp_path)
    assert cfg.model.backbone == "resnet18" and cfg.train.seed == 1


def test_cli_help_lists_options(capsys: pytest.CaptureFixture) -> None:
    for verb, opts in (("demo", ("--out", "--data", "--train-epochs", "--no-train", "--full", "--size", "--seed",
                                 "--quick")),
                       ("reproduce", ("--detectors", "--strategies", "--seeds", "--epochs", "--out", "--quick",
                                      "--full", "--config-dir", "--data"))):  # fmt: skip
        with pytest.raises(SystemExit):
            main([verb, "--help"])
        text = capsys.readouterr().out
        for o in opts:
            assert o in text, (verb, o)


def test_images_per_epoch_draws_a_new_subset_each_epoch() -> None:
    """train.images_per_epoch (used by the CPU recipe): the first N indices of each epoch's permutation."""
    from mgdet.data import EpochRandomSampler
    from mgdet.engine.train import LimitSampler

    sampler = LimitSampler(EpochRandomSampler(list(range(100)), seed=0), 10)
    sampler.set_epoch(0)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    assert len(sampler) == len(first) == len(second) == 10 and len(set(first)) == 10 and first != second
    assert len(LimitSampler(EpochRandomSampler(list(range(5)), seed=0), 10)) == 5
    assert len(LimitSampler(EpochRandomSampler(list(range(5)), seed=0), 0)) == 5


def test_assignment_overlap_script_on_a_demo_checkpoint(demo_out: tuple[Path, str]) -> None:
    """``scripts/assignment_overlap.py`` (used for the analysis in docs/results) runs on a real checkpoint."""
    import subprocess
    import sys

    ckpt = demo_out[0] / "live_quick" / "runs" / "retinanet_mbv2_mg_s0" / "last.pth"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "assignment_overlap.py"), str(ckpt),
                           "--images", "3"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    row = next(line for line in proc.stdout.splitlines() if "last.pth" in line)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert int(cells[1]) > 0 and 0.0 <= float(cells[2]) <= 100.0 and 0.0 <= float(cells[3]) <= 100.0


def test_a_moved_grid_folder_still_finds_its_histories(tmp_path: Path) -> None:
    from mgdet.demo.runner import load_record

    run = tmp_path / "runs" / "r_iou_0"
    run.mkdir(parents=True)
    rec = _record("iou", 0, 0.3, 0.3)
    rec.run_dir = "/somewhere/else/r_iou_0"  # where it was trained
    (run / "metrics.json").write_text(json.dumps(rec.to_dict()))
    loaded = load_record(run)
    assert loaded is not None and loaded.skipped and loaded.run_dir == str(run)
    assert loaded.metrics == rec.metrics


def test_parallel_grid_script_trains_cells_at_once_and_writes_the_table(tmp_path: Path) -> None:
    """scripts/parallel_grid.sh: each cell is its own `mgdet reproduce`, the table covers the whole grid; a repeated
    strategy or seed is one cell, never two writers of one folder (issue 22, items 4 and 9)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "scripts" / "parallel_grid.sh"
    out = tmp_path / "grid"
    env = {**os.environ, "MGDET": f"{sys.executable} -m mgdet"}
    proc = subprocess.run(["bash", str(script), str(out), "2", "retinanet_mbv2", "iou,mg,mutual_guidance", "0,0",
                           "--quick"],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "done: retinanet_mbv2_iou_s0" in proc.stdout and "done: retinanet_mbv2_mg_s0" in proc.stdout
    assert proc.stdout.count("done:") == 2 and "repeated strategies removed" in proc.stderr
    for cell in ("retinanet_mbv2_iou_s0", "retinanet_mbv2_mg_s0"):
        assert (out / "runs" / cell / "metrics.json").is_file() and (out / "logs" / f"{cell}.log").is_file()
    md = (out / "results.md").read_text()
    assert "**runs finished**: 2 / 2" in md and "Mutual Guidance" in md


def test_demo_full_compares_the_live_runs_with_the_zoo_and_refuses_conflicting_options() -> None:
    from types import SimpleNamespace

    from mgdet.demo.pipeline import _full_comparison

    evals = [SimpleNamespace(name="retinanet_mbv2_iou", strategy="iou", metrics={"AP": 0.421}),
             SimpleNamespace(name="retinanet_mbv2_mg", strategy="mutual_guidance", metrics={"AP": 0.422})]  # fmt: skip
    records = [_record("iou", 0, 0.415, 0.47), _record("mutual_guidance", 0, 0.43, 0.49)]
    text = _full_comparison(evals, records)
    assert "full recipe trained now vs the zoo" in text
    rows = [line for line in text.splitlines() if "static IoU" in line or "Mutual Guidance" in line]
    assert "41.5" in rows[0] and "42.1" in rows[0] and "-0.6" in rows[0]
    assert "43.0" in rows[1] and "42.2" in rows[1] and "0.8" in rows[1]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["demo", "--full", "--no-train"]) == 2
    assert "--full trains the whole recipe" in err.getvalue()


def test_repeated_strategies_seeds_and_detectors_are_removed_with_a_note() -> None:
    """``--strategies mg,mutual_guidance --seeds 0,0`` is one run, never reported as two (issue 22, item 9)."""
    from mgdet.demo.pipeline import distinct_cells

    log: list[str] = []
    cells = distinct_cells(["retinanet_mbv2", "retinanet_mbv2"], ["mg", "iou", "mutual_guidance"], [0, 0, 1],
                           log.append)  # fmt: skip
    assert cells == (["retinanet_mbv2"], ["mutual_guidance", "iou"], [0, 1])
    assert len(log) == 3 and "repeated strategies removed (mg, iou, mutual_guidance -> mutual_guidance, iou)" in log[1]
    log.clear()
    assert distinct_cells(["fssd_mbv2"], ["iou"], [2], log.append) == (["fssd_mbv2"], ["iou"], [2]) and not log


def test_an_interrupted_generation_is_generated_again(tmp_path: Path) -> None:
    """The demo interrupted while generating the benchmark used to take the half-written folder as complete
    (issue 22, item 8): the generator's marker of an unfinished run now makes it generate again."""
    from mgdet.data.benchmark import generate_benchmark

    root = tmp_path / "benchmark"

    def stop(done: int, total: int) -> None:
        if done >= 8:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_benchmark(root, seed=0, progress=stop, **QUICK_BENCHMARK)
    assert (root / "ImageSets" / "Main").is_dir() and not (root / "benchmark.json").exists()
    lines: list[str] = []
    assert ensure_benchmark(root, quick=True, progress=False, log=lines.append) == root
    assert "unfinished benchmark" in lines[0] and (root / "benchmark.json").is_file()
    train_ids = (root / "ImageSets" / "Main" / "train.txt").read_text().split()
    assert len(train_ids) == QUICK_BENCHMARK["num_train"]
