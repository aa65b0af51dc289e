"""A resumable grid of training runs (detector x strategy x seed) and its mean +- std summary.

Each run lives in ``OUT/runs/<detector>_<abbr>_s<seed>/`` (the normal ``mgdet train`` output folder). A run
is *finished* when its ``metrics.json`` exists and is skipped; a run with a ``last.pth`` but no
``metrics.json`` was interrupted and resumes from that checkpoint. Either happens only when the folder's
``config.yaml`` is the run's configuration: an older recipe's run is refused, never reported as this one.
Interrupting the grid (Ctrl-C) stops after the current run has written its checkpoint; the same command
continues.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgdet.demo.recipe import STRATEGY_ABBR
from mgdet.engine.config import RunConfig
from mgdet.utils.machine import machine_description

#: Metrics kept per run and summarised over seeds (fractions, as :func:`mgdet.evaluation.evaluate`).
METRIC_KEYS: tuple[str, ...] = ("AP", "AP50", "AP75", "APs", "APm", "APl", "misalign")
METRICS_FILE = "metrics.json"


@dataclass
class RunSpec:
    """One cell of the grid."""

    detector: str
    strategy: str
    seed: int
    config: RunConfig

    @property
    def run_id(self) -> str:
        return f"{self.detector}_{STRATEGY_ABBR[self.strategy]}_s{self.seed}"


@dataclass
class RunRecord:
    """What a finished run leaves behind (the content of its ``metrics.json``)."""

    run_id: str
    detector: str
    strategy: str
    seed: int
    metrics: dict[str, float]
    train_time_s: float  # sum of the epochs' training time (resumes included; evaluation excluded)
    wall_time_s: float  # wall time of the call(s) that trained and evaluated it
    epochs: int
    iters: int
    run_dir: str
    skipped: bool = False  # found finished on disk by this invocation
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id, "detector": self.detector, "strategy": self.strategy, "seed": self.seed,
            "metrics": self.metrics, "train_time_s": self.train_time_s, "wall_time_s": self.wall_time_s,
            "epochs": self.epochs, "iters": self.iters, "run_dir": self.run_dir, **self.extra,
        }  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any], skipped: bool = False) -> RunRecord:
        known = {"run_id", "detector", "strategy", "seed", "metrics", "train_time_s", "wall_time_s", "epochs",
                 "iters", "run_dir"}  # fmt: skip
        return cls(
            run_id=d["run_id"], detector=d["detector"], strategy=d["strategy"], seed=int(d["seed"]),
            metrics={k: float(v) for k, v in d["metrics"].items()}, train_time_s=float(d["train_time_s"]),
            wall_time_s=float(d.get("wall_time_s", 0.0)), epochs=int(d.get("epochs", 0)),
            iters=int(d.get("iters", 0)), run_dir=str(d.get("run_dir", "")), skipped=skipped,
            extra={k: v for k, v in d.items() if k not in known},
        )  # fmt: skip


@dataclass
class GridResult:
    """Records of the finished runs, in grid order, and whether the grid stopped early."""

    records: list[RunRecord]
    interrupted: bool = False
    pending: list[str] = field(default_factory=list)  # run ids not finished


def load_record(run_dir: Path) -> RunRecord | None:
    """The record of a finished run, or None when ``run_dir`` holds no (readable) ``metrics.json``."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return None
    try:
        record = RunRecord.from_dict(json.loads(path.read_text()), skipped=True)
    except (ValueError, KeyError, TypeError):
        return None  # a damaged record: train again
    record.run_dir = str(run_dir)  # where it is now (a grid folder may have been moved or copied)
    return record


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_differences(config: RunConfig, run_dir: Path) -> list[str]:
    """``key: stored -> now`` for every setting in which ``run_dir/config.yaml`` (what the run there was
    trained with) differs from ``config``; ``output_dir`` is not compared (grid folders can move)."""
    from mgdet.engine.config import load_config

    path = run_dir / "config.yaml"
    if not path.is_file():
        return []
    stored = _flat(load_config(path).to_dict())
    now = _flat(config.to_dict())
    keys = [k for k in dict.fromkeys([*stored, *now]) if k != "output_dir"]
    return [f"{k}: {stored.get(k)!r} -> {now.get(k)!r}" for k in keys if stored.get(k) != now.get(k)]


def check_same_config(spec: RunSpec, run_dir: Path) -> None:
    """Refuse to reuse or resume a run folder trained with another configuration (e.g. an older recipe):
    its numbers would be reported as this recipe's."""
    from mgdet.engine.config import ConfigError

    diffs = config_differences(spec.config, run_dir)
    if diffs:
        shown = "; ".join(diffs[:4]) + (f"; and {len(diffs) - 4} more" if len(diffs) > 4 else "")
        raise ConfigError(
            f"{run_dir}: run {spec.run_id} there was trained with another configuration ({shown}); "
            f"give --out a new folder, or remove {run_dir} to train it again"
        )


def run_one(
    spec: RunSpec, progress: bool = True, tensorboard: bool = False, log: Callable[[str], None] | None = None
) -> tuple[RunRecord | None, bool]:
    """Train + evaluate one run (resuming from its ``last.pth``); returns ``(record, interrupted)``."""
    from mgdet.engine.train import train

    run_dir = Path(spec.config.output_dir)
    last = run_dir / "last.pth"
    resume = last if last.is_file() else None
    t0 = time.perf_counter()
    result = train(
        spec.config, resume=resume, progress=progress, tensorboard=tensorboard, log=log, restart=True
    )  # the folder's configuration was checked (check_same_config): an unfinished run starts over
    wall = time.perf_counter() - t0
    if result.interrupted or not result.final_metrics:
        return None, True
    hist = result.history
    record = RunRecord(
        run_id=spec.run_id, detector=spec.detector, strategy=spec.strategy, seed=spec.seed,
        metrics={k: float(result.final_metrics[k]) for k in METRIC_KEYS if k in result.final_metrics},
        train_time_s=round(sum(float(r.get("epoch_time_s") or 0.0) for r in hist), 2),
        wall_time_s=round(wall, 2), epochs=int(hist[-1]["epoch"]) if hist else 0,
        iters=int(hist[-1]["iter"]) if hist else 0, run_dir=str(run_dir),
        extra={"resumed": resume is not None, "machine": machine_description(), **_final_scores(hist)},
    )  # fmt: skip
    tmp = run_dir / (METRICS_FILE + ".tmp")
    tmp.write_text(json.dumps(record.to_dict(), indent=1))
    tmp.replace(run_dir / METRICS_FILE)
    return record, False


def _final_scores(history: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The last epoch's class score of classification positives (median, mean), when the history has it."""
    last = history[-1] if history else {}
    return {k: float(last[k]) for k in ("pos_score_median", "pos_score_mean") if last.get(k) not in (None, "")}


def run_grid(
    specs: Sequence[RunSpec],
    progress: bool = True,
    log: Callable[[str], None] = print,
    report_only: bool = False,
) -> GridResult:
    """Run every spec not finished yet, in order; prints an outer ``run i/N`` line per run. With
    ``report_only`` nothing is trained: the finished runs are collected and the others listed as pending."""
    records: list[RunRecord] = []
    pending: list[str] = []
    n = len(specs)
    for i, spec in enumerate(specs, 1):
        run_dir = Path(spec.config.output_dir)
        check_same_config(spec, run_dir)
        done = load_record(run_dir)
        if done is not None:
            log(f"run {i}/{n}: {spec.run_id} finished earlier (AP {100 * done.metrics.get('AP', math.nan):.1f}), "
                "skipped")  # fmt: skip
            records.append(done)
            continue
        if report_only:
            log(f"run {i}/{n}: {spec.run_id} not finished (--report-only: not trained)")
            pending.append(spec.run_id)
            continue
        how = "resuming from last.pth" if (run_dir / "last.pth").is_file() else "training"
        log(f"run {i}/{n}: {spec.run_id} ({how}) -> {run_dir}")
        record, interrupted = run_one(spec, progress=progress, log=log)
        if interrupted or record is None:
            pending = [s.run_id for s in specs[i - 1 :]]
            log(f"run {i}/{n}: {spec.run_id} interrupted; run the same command again to continue")
            return GridResult(records, interrupted=True, pending=pending)
        log(f"run {i}/{n}: {spec.run_id} done: AP {100 * record.metrics['AP']:.1f}  "
            f"AP75 {100 * record.metrics['AP75']:.1f}  ({record.train_time_s:.0f} s training)")  # fmt: skip
        records.append(record)
    return GridResult(records, pending=pending)


# -------------------------------------------------------------------------------------------- summary
def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan, math.nan
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def summarize(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One row per (detector, strategy), in first-seen order: n, seeds, ``mean``/``std`` per metric and time."""
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for r in records:
        groups.setdefault((r.detector, r.strategy), []).append(r)
    rows = []
    for (detector, strategy), rs in groups.items():
        row: dict[str, Any] = {"detector": detector, "strategy": strategy, "n": len(rs),
                               "seeds": sorted(r.seed for r in rs), "mean": {}, "std": {}}  # fmt: skip
        for k in (*METRIC_KEYS, "train_time_s"):
            vals = [r.train_time_s if k == "train_time_s" else r.metrics.get(k, math.nan) for r in rs]
            row["mean"][k], row["std"][k] = _mean_std(vals)
        rows.append(row)
    return rows


def deltas(records: Sequence[RunRecord], baseline: str = "iou") -> list[dict[str, Any]]:
    """Per detector and non-baseline strategy: mean difference to ``baseline`` (AP points, x100) and the
    std of the per-seed paired differences (seeds present in both)."""
    by: dict[tuple[str, str], dict[int, RunRecord]] = {}
    for r in records:
        by.setdefault((r.detector, r.strategy), {})[r.seed] = r
    out = []
    for (detector, strategy), runs in by.items():
        base = by.get((detector, baseline))
        if strategy == baseline or not base:
            continue
        row: dict[str, Any] = {"detector": detector, "strategy": strategy, "baseline": baseline, "mean": {},
                               "paired_std": {}, "paired_seeds": sorted(set(runs) & set(base))}  # fmt: skip
        for k in ("AP", "AP50", "AP75", "misalign"):
            m_s, _ = _mean_std([100 * r.metrics.get(k, math.nan) for r in runs.values()])
            m_b, _ = _mean_std([100 * r.metrics.get(k, math.nan) for r in base.values()])
            row["mean"][k] = m_s - m_b
            paired = [100 * (runs[s].metrics.get(k, math.nan) - base[s].metrics.get(k, math.nan))
                      for s in row["paired_seeds"]]  # fmt: skip
            row["paired_std"][k] = _mean_std(paired)[1] if paired else math.nan
        out.append(row)
    return out
