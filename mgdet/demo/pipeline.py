"""``mgdet demo`` and ``mgdet reproduce`` as library functions (the CLI in :mod:`mgdet.cli_demo` is a thin layer).

```python
from mgdet.demo import run_demo, run_reproduce
demo = run_demo(out="mgdet_runs/demo")                  # benchmark + IoU vs MG + report folder
grid = run_reproduce(out="mgdet_runs/reproduce", detectors=["retinanet_mbv2"], seeds=[0, 1, 2])
```
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mgdet.demo.live import ZooEval
from mgdet.demo.recipe import (
    BENCHMARK_DETECTORS,
    DEFAULT_DATA,
    DEMO_PAIR_DETECTOR,
    DEMO_TRAIN_EPOCHS,
    RECIPE_EPOCHS,
    STRATEGY_ABBR,
    STRATEGY_TITLES,
    grid_config,
    parse_strategy,
    quick_overrides,
    recipe_summary,
)
from mgdet.demo.runner import GridResult, RunRecord, RunSpec, run_grid
from mgdet.utils.machine import machine_description
from mgdet.zoo.catalog import short_machine

#: Benchmark size used by ``--quick`` when no ``--data`` is given (seconds to generate).
QUICK_BENCHMARK = {"num_train": 24, "num_val": 8, "image_size": 128}


@dataclass
class DemoResult:
    """What :func:`run_demo` produced."""

    zoo: list[ZooEval]  # the zoo's detectors, evaluated now
    grid: GridResult | None  # the live training runs (None with ``train=False``)
    table: str  # the printed tables
    report_dir: Path | None
    files: dict[str, Path] = field(default_factory=dict)
    wall_time_s: float = 0.0
    headline: str = ""


def ensure_benchmark(
    root: str | Path,
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    log: Callable[[str], None] = print,
    workers: int = 1,
) -> Path:
    """Use the dataset at ``root`` if there is one, else generate the benchmark there (tiny with ``quick``).

    A folder with ``benchmark.json`` or a VOC ``ImageSets`` folder is used as it is (whatever its size), except an
    unfinished benchmark (the generator's marker without ``benchmark.json``: an interrupted generation), which is
    generated again.
    ``workers > 1`` renders in that many processes (see :func:`mgdet.data.benchmark.generate_benchmark`: only
    from a program whose main module is importable, e.g. the ``mgdet`` command).
    """
    from tqdm import tqdm

    from mgdet.data.benchmark import DEFAULT_IMAGE_SIZE, DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, generate_benchmark
    from mgdet.data.benchmark.writer import MARKER

    root = Path(root)
    unfinished = (root / MARKER).is_file() and not (root / "benchmark.json").is_file()
    if not unfinished and ((root / "benchmark.json").is_file() or (root / "ImageSets" / "Main").is_dir()):
        log(f"dataset: {root} (already there, not regenerated)")
        return root
    if unfinished:  # an interrupted generation: its marker names the files it wrote, which are replaced
        log(f"dataset: {root} holds an unfinished benchmark (interrupted generation); generating it again")
    params = QUICK_BENCHMARK if quick else {"num_train": DEFAULT_NUM_TRAIN, "num_val": DEFAULT_NUM_VAL,
                                             "image_size": DEFAULT_IMAGE_SIZE}  # fmt: skip
    log(f"dataset: generating the benchmark ({params['num_train']} train + {params['num_val']} val images, "
        f"{params['image_size']} px) in {root}")  # fmt: skip
    bar = tqdm(total=params["num_train"] + params["num_val"], desc="generate", unit="img", disable=not progress,
               leave=False)  # fmt: skip

    def tick(done: int, total: int) -> None:
        bar.total, bar.n = total, done
        bar.refresh()

    info = generate_benchmark(root, seed=seed, progress=tick, workers=1 if quick else workers, overwrite=unfinished,
                              **params)  # fmt: skip
    bar.close()
    log(f"dataset: done in {info.seconds:.0f} s")
    return root


def weights_overrides(log: Callable[[str], None] = print) -> list[str]:
    """``[]`` when the bundled MobileNetV2 weights (``pretrained: offline``) are installed; otherwise the
    override that downloads the same torchvision file (``model.pretrained=imagenet``, hash-checked)."""
    from mgdet.models.pretrained import OFFLINE_PACKAGE, offline_weights_path

    try:
        offline_weights_path()
        return []
    except FileNotFoundError:
        log(f"weights: {OFFLINE_PACKAGE} is not installed; using torchvision's ImageNet MobileNetV2 file instead "
            "(the same weights, downloaded once by torch.hub)")  # fmt: skip
        return ["model.pretrained=imagenet"]


def _specs(
    detectors: Sequence[str],
    strategies: Sequence[str],
    seeds: Sequence[int],
    out: Path,
    data: Path | None,
    config_dir: Path | None,
    epochs: int | None,
    overrides: Sequence[str],
) -> list[RunSpec]:
    """Grid order: detector, then seed, then strategy, so that a partial grid holds complete seed pairs."""
    specs = []
    for detector in detectors:
        for seed in seeds:
            for strategy in strategies:
                strategy = parse_strategy(strategy)
                run_id = f"{detector}_{STRATEGY_ABBR[strategy]}_s{seed}"
                cfg = grid_config(detector, strategy, seed, out / "runs" / run_id, data, config_dir, epochs,
                                  list(overrides))  # fmt: skip
                specs.append(RunSpec(detector, strategy, int(seed), cfg))
    return specs


def run_demo(
    out: str | Path = "mgdet_runs/demo",
    data: str | Path | None = None,
    train_epochs: int | None = None,
    train: bool = True,
    full: bool = False,
    size: int | None = None,
    seed: int = 0,
    quick: bool = False,
    overrides: Sequence[str] = (),
    progress: bool = True,
    report: bool = True,
    log: Callable[[str], None] = print,
    workers: int = 1,
) -> DemoResult:
    """Benchmark (generated if missing) -> the zoo's static IoU and Mutual Guidance detectors evaluated now ->
    the same two rules trained now from ImageNet for ``train_epochs`` (``full``: the whole recipe) -> tables and a
    report folder (``out/report``).

    Finished live runs in ``out/live_<N>ep/runs`` (``--quick``: ``live_quick``) are reused (an interrupted
    demo continues where it stopped).
    ``quick``: a tiny benchmark and a few training steps (tests). ``workers``: processes that render a missing
    benchmark (see :func:`ensure_benchmark`).
    """
    from mgdet.demo.live import evaluate_zoo
    from mgdet.demo.report import demo_rows, headline, write_demo_report, zoo_rows
    from mgdet.utils.table import format_table
    from mgdet.zoo import DEMO_PAIR, read_manifest

    t0 = time.perf_counter()
    out = Path(out)
    if data is None:
        data = out / "benchmark_quick" if quick else Path(DEFAULT_DATA)
    root = ensure_benchmark(data, quick=quick, progress=progress, log=log, workers=workers)
    evals, val = evaluate_zoo(DEMO_PAIR, root, progress=progress, log=log)
    zh, zr = zoo_rows(evals)
    tables = ["trained detectors from the zoo, evaluated now on the validation split (%):",
              format_table(zr, zh, float_fmt=".1f")]  # fmt: skip
    grid, live_label = None, ""
    if train:
        epochs = RECIPE_EPOCHS if full else (train_epochs or DEMO_TRAIN_EPOCHS)
        extra = weights_overrides(log) + list(quick_overrides() if quick else []) + list(overrides)
        if size is not None:  # the paper's anchor layout scaled to the input
            extra += [f"data.input_size={int(size)}", "model.anchor_base=auto"]
        live_dir = out / ("live_quick" if quick else f"live_{epochs}ep")
        specs = _specs([DEMO_PAIR_DETECTOR], ["iou", "mutual_guidance"], [seed], live_dir, root, None,
                       None if quick else epochs, extra)  # fmt: skip
        cfg = specs[0].config
        steps = cfg.train.epochs * max(cfg.train.images_per_epoch // cfg.train.batch_size, 1)
        steps = min(steps, cfg.train.max_iters) if cfg.train.max_iters else steps
        shipped = read_manifest(DEMO_PAIR[0]).get("iters", "?")
        live_label = (f"static IoU and Mutual Guidance from ImageNet, {_epochs(cfg.train.epochs)} of "
                      f"{cfg.train.images_per_epoch} images ({steps} steps; "
                      f"the zoo's detectors: {shipped}), seed {seed}, the recipe's cosine schedule compressed into "
                      "the short run")  # fmt: skip
        log(f"training now: {live_label}")
        grid = run_grid(specs, progress=progress, log=log)
        if grid.records:
            headers, rows = demo_rows(grid.records)
            tables += [f"trained now ({_epochs(cfg.train.epochs)}, {steps} steps), evaluated on the same split (%):",
                       format_table(rows, headers, float_fmt=".1f")]  # fmt: skip
        if full and len(grid.records) == 2:
            tables.append(_full_comparison(evals, grid.records))
    table = "\n".join(tables)
    head = headline(evals)
    if grid is not None and grid.interrupted:
        return DemoResult(evals, grid, table, None, wall_time_s=time.perf_counter() - t0, headline=head)
    info = {
        "time": f"this demo took {(time.perf_counter() - t0) / 60:.1f} min (before the report) on "
                f"{machine_description()}",
        "dataset": f"{root}, validation split ({len(val)} images; the zoo pair evaluated in "
                   f"{evals[0].eval_time_s:.0f} s)",
        "computed now": "the zoo detectors' metrics and pictures"
                        + (f"; the live runs ({live_label})" if train else " (live training skipped: --no-train)"),
        "shipped": _shipped_line(evals),
    }  # fmt: skip
    files: dict[str, Path] = {}
    report_dir = None
    if report:
        report_dir = out / "report"
        files = write_demo_report(evals, grid.records if grid else [], val, report_dir, info, live_label,
                                  num_images=2 if quick else 4)  # fmt: skip
    return DemoResult(evals, grid, table, report_dir, files, time.perf_counter() - t0, head)


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("s" if n != 1 else "")


def _shipped_line(evals: Sequence[ZooEval]) -> str:
    """Where the zoo detectors come from: config, steps, training time and machine (from their manifests)."""
    parts = []
    for e in evals:
        m = e.manifest
        minutes = float(m.get("train_time_s") or 0) / 60
        where = short_machine(str(m.get("machine", "?")))
        parts.append(f"zoo:{e.name} ({m.get('config_file', '?')}, {m.get('iters', '?')} steps, {minutes:.1f} min of "
                     f"training on {where}, packed {m.get('packed', '?')})")  # fmt: skip
    return ("; ".join(parts) + " — trained by scripts/make_zoo.sh, weights, manifests and curves in "
            "mgdet/zoo/detectors (`mgdet zoo NAME` shows one); one seed each, the mean over three seeds is in "
            "docs/results/benchmark.md")  # fmt: skip


def _full_comparison(evals: Sequence[ZooEval], records: Sequence[RunRecord]) -> str:
    """``--full``: the live runs' AP against the zoo detectors' (same recipe and seed)."""
    from mgdet.demo.report import DEMO_TITLES
    from mgdet.utils.table import format_table

    by = {r.strategy: r for r in records}
    rows = []
    for e in evals:
        r = by.get(e.strategy)
        if r is not None:
            rows.append([DEMO_TITLES.get(e.strategy, e.strategy), 100 * r.metrics["AP"], 100 * e.metrics["AP"],
                         100 * (r.metrics["AP"] - e.metrics["AP"])])  # fmt: skip
    return "full recipe trained now vs the zoo (AP %, same recipe and seed; CPU kernels differ between machines):\n" + (
        format_table(rows, ["strategy", "trained now", "zoo", "difference"], float_fmt=".1f")
    )


def run_reproduce(
    out: str | Path = "mgdet_runs/reproduce",
    detectors: Sequence[str] = BENCHMARK_DETECTORS,
    strategies: Sequence[str] = tuple(STRATEGY_ABBR),
    seeds: Sequence[int] = (0, 1, 2),
    data: str | Path | None = None,
    config_dir: str | Path | None = None,
    epochs: int | None = None,
    quick: bool = False,
    overrides: Sequence[str] = (),
    progress: bool = True,
    command: str = "",
    results_dir: str | Path | None = None,
    results_name: str = "results",
    log: Callable[[str], None] = print,
    report_only: bool = False,
) -> tuple[GridResult, dict[str, Path]]:
    """The Table 1 ablation: detectors x strategies x seeds, resumable; writes results.json/.md/.png in ``out``.

    Without ``config_dir`` the built-in CPU recipe is used and the benchmark is generated when ``data``
    is missing; with it, ``config_dir/<detector>_<abbr>.yaml`` are used as they are (``data`` overrides
    their ``data.root`` when given). The results go to ``results_dir`` (default ``out``) as
    ``<results_name>.json/.md/.png``.
    """
    from mgdet.demo.report import write_grid_results

    t0 = time.perf_counter()
    out = Path(out)
    root: Path | None
    if config_dir is None:
        root = Path(data) if data is not None else (out / "benchmark_quick" if quick else Path(DEFAULT_DATA))
        root = ensure_benchmark(root, quick=quick, progress=progress, log=log)
    else:
        root = Path(data) if data is not None else None
    extra = (weights_overrides(log) if config_dir is None else []) + list(quick_overrides() if quick else [])
    extra += list(overrides)
    detectors, strategies, seeds = distinct_cells(detectors, strategies, seeds, log)
    specs = _specs(detectors, strategies, seeds, out, root, Path(config_dir) if config_dir else None, epochs, extra)
    log(f"reproduce: {len(specs)} runs ({len(detectors)} detectors x {len(strategies)} strategies x "
        f"{len(seeds)} seeds) in {out / 'runs'}")  # fmt: skip
    coverage = _coverage(specs, log)
    grid = run_grid(specs, progress=progress, log=log, report_only=report_only)
    cfg = specs[0].config if specs else None
    total_train = sum(r.train_time_s for r in grid.records)
    info: dict[str, Any] = {
        "command": f"`{command}`" if command else "",
        "dataset": str(root if root is not None else (cfg.data.root if cfg else "")),
        "runs finished": f"{len(grid.records)} / {len(specs)}" + (" (interrupted; rerun to continue)"
                                                                  if grid.interrupted else "")
        + (f" (not trained: {', '.join(grid.pending)})" if report_only and grid.pending else ""),
        "wall time of this invocation": f"{(time.perf_counter() - t0) / 60:.1f} min",
        "sum of training times": f"{total_train / 60:.1f} min",
        "sum of run wall times (training + evaluation)": f"{sum(r.wall_time_s for r in grid.records) / 60:.1f} min",
        "machine of this invocation": machine_description(),
        "runs trained on": _training_machines(grid.records),
    }  # fmt: skip
    if cfg is not None:
        info["recipe"] = recipe_summary(cfg) + (" (--quick)" if quick else "")
    for detector, cov in coverage.items():
        info[f"anchor coverage, {detector} (train split)"] = cov["line"]
    info = {k: v for k, v in info.items() if v}
    files = write_grid_results(grid.records, Path(results_dir) if results_dir else out, info, stem=results_name,
                               extra={"anchor_coverage": coverage})  # fmt: skip
    return grid, files


def distinct_cells(
    detectors: Sequence[str], strategies: Sequence[str], seeds: Sequence[int], log: Callable[[str], None] = print
) -> tuple[list[str], list[str], list[int]]:
    """The grid's axes without repeats, in first-seen order: strategies compared by their full name (``mg`` and
    ``mutual_guidance`` are one), seeds as integers. A removed repeat is logged: one run is never counted (or
    trained) twice as if it were two."""
    out: list[list] = []
    for axis, values, key in (("detectors", detectors, str), ("strategies", strategies, parse_strategy),
                              ("seeds", seeds, int)):  # fmt: skip
        canonical = [key(v) for v in values]
        kept = list(dict.fromkeys(canonical))
        if len(kept) < len(canonical):
            log(f"reproduce: repeated {axis} removed ({', '.join(map(str, values))} -> {', '.join(map(str, kept))})")
        out.append(kept)
    return out[0], out[1], out[2]


def _training_machines(records: Sequence[RunRecord]) -> str:
    """The machines the runs were trained on (as each run recorded it), with their run counts."""
    counts: dict[str, int] = {}
    for r in records:
        key = str(r.extra.get("machine") or "not recorded in the run's metrics.json")
        counts[key] = counts.get(key, 0) + 1
    return "; ".join(f"{m} ({n} run{'s' if n > 1 else ''})" for m, n in counts.items())


def _coverage(specs: Sequence[RunSpec], log: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Anchor coverage of each detector's training split at its input size (printed and kept in results)."""
    from mgdet.data.errors import DatasetError
    from mgdet.engine.coverage import config_coverage

    out: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec.detector in out:
            continue
        try:
            cov = config_coverage(spec.config)
        except (DatasetError, OSError, ValueError) as exc:  # the grid itself will report a broken dataset
            log(f"anchor coverage of {spec.detector}: not computed ({exc})")
            continue
        if cov is not None:
            log(f"{spec.detector}: {cov.line()}")
            out[spec.detector] = {**cov.to_dict(), "line": cov.line()}
    return out


def summary_rows(grid: GridResult) -> tuple[list[str], list[list[Any]]]:
    """Headers and rows of the end-of-run summary table (mean ± std over seeds, %)."""
    from mgdet.demo.report import pm
    from mgdet.demo.runner import summarize

    headers = ["model", "strategy", "AP", "AP50", "AP75", "misalign %", "seeds"]
    rows = []
    for s in summarize(grid.records):
        rows.append([s["detector"], STRATEGY_TITLES.get(s["strategy"], s["strategy"]),
                     *(pm(100 * s["mean"][k], 100 * s["std"][k]) for k in ("AP", "AP50", "AP75", "misalign")),
                     s["n"]])  # fmt: skip
    return headers, rows
