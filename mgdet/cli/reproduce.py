"""``mgdet reproduce``: the paper's Table 1 ablation (strategies x detectors x seeds), resumable."""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from mgdet.cli.common import add_no_progress, positive_int
from mgdet.demo.recipe import BENCHMARK_DETECTORS, DEFAULT_DATA, PAPER_DETECTORS
from mgdet.strategies import SHORT_NAMES, STRATEGY_TABLE

#: The default of --strategies: the paper's four, by short name.
PAPER_SHORT = ",".join(s.short for s in STRATEGY_TABLE if s.in_paper)

REPRODUCE_HELP = f"""The paper's Table 1 ablation: strategies x detectors x seeds, one training run each, resumable
(a run with OUT/runs/<run>/metrics.json is skipped, one with only last.pth resumes from it; Ctrl-C stops
after a checkpoint and the same command continues). Writes OUT/results.json, OUT/results.md (mean ± std
over seeds in the paper's layout, MG - IoU deltas, assignment statistics per epoch) and OUT/results.png
(bar chart). Rerunning a finished grid only rewrites the results (e.g. into --results-dir docs/results
--results-name benchmark).

Default: {", ".join(BENCHMARK_DETECTORS)} on the CPU benchmark with the built-in recipe (= configs/benchmark/).
--full: every paper model with the paper's configs, read from --config-dir (default configs/voc) as
<detector>_<strategy>.yaml with strategy in {PAPER_SHORT.replace(",", ", ")}; detectors:
{", ".join(PAPER_DETECTORS)};
meant for GPUs with VOC/COCO (--data sets data.root)."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``reproduce`` verb."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("reproduce", help="Table 1 ablation: strategies x detectors x seeds, resumable",
                       description=REPRODUCE_HELP, formatter_class=fmt)  # fmt: skip
    p.add_argument("--out", default="mgdet_runs/reproduce", help="output folder (mgdet_runs/reproduce)")
    p.add_argument("--detectors", help=f"comma-separated (default {','.join(BENCHMARK_DETECTORS)}; "
                   "--full: all paper models)")  # fmt: skip
    p.add_argument("--strategies", default=PAPER_SHORT,
                   help=f"comma-separated, full or short names, any of {','.join(SHORT_NAMES)} "
                   f"(default: the paper's {PAPER_SHORT})")  # fmt: skip
    p.add_argument("--seeds", type=_ints, default="3",
                   help="a count N >= 1 (seeds 0..N-1) or a list: 1,2 (or 2, for seed 2 alone) (3)")  # fmt: skip
    p.add_argument("--epochs", type=positive_int, help="override train.epochs of every run")
    p.add_argument("--data", help=f"dataset root (default {DEFAULT_DATA}, generated if missing; with "
                   "--config-dir it overrides data.root)")  # fmt: skip
    p.add_argument("--config-dir", help="folder of <detector>_<strategy>.yaml configs instead of the built-in recipe")
    p.add_argument("--full", action="store_true", help="every paper model with the paper's configs (GPU)")
    p.add_argument("--quick", action="store_true", help="a few iterations per run on a tiny benchmark (tests)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every run (repeatable)")  # fmt: skip
    p.add_argument("--report-only", action="store_true",
                   help="train nothing: write the results of the runs already finished in OUT (the others are "
                        "listed as not trained), e.g. for a grid trained in parts on several machines")  # fmt: skip
    p.add_argument("--list-cells", action="store_true",
                   help="train nothing: print the grid's distinct runs, one 'DETECTOR STRATEGY SEED' line each "
                        "(repeats like mg,mutual_guidance or 0,0 removed), for scripts/parallel_grid.sh")  # fmt: skip
    p.add_argument("--results-dir", help="folder for the results files (default OUT)")
    p.add_argument("--results-name", default="results", help="base name of the results files (results)")
    p.add_argument("--command", help=argparse.SUPPRESS)
    add_no_progress(p, "no progress bars")
    p.set_defaults(func=run)


def _ints(text: str) -> list[int]:
    """``"0,1,2"`` or ``"3"`` (a count: seeds 0..2); a count below 1 or a bad list is a usage error."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    try:
        if len(parts) == 1 and "," not in text:
            count = int(parts[0])
            if count < 1:
                raise argparse.ArgumentTypeError(
                    f"a count of {count} seeds runs nothing: give a count >= 1 or a list like 0 or 0,1"
                )
            return list(range(count))
        seeds = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a count like 3 or a list like 0,1,2") from None
    if not seeds:
        raise argparse.ArgumentTypeError(f"{text!r}: no seed given")
    return seeds


def _names(text: str) -> list[str]:
    return [p for p in text.replace(" ", "").split(",") if p]


def run(args: argparse.Namespace) -> int:
    from mgdet.demo.pipeline import distinct_cells, run_reproduce, summary_rows
    from mgdet.strategies import strategy_spec
    from mgdet.utils.table import format_table

    detectors = (
        _names(args.detectors) if args.detectors else list(PAPER_DETECTORS if args.full else BENCHMARK_DETECTORS)
    )
    if args.list_cells:
        dets, strategies, seeds = distinct_cells(
            detectors, _names(args.strategies), args.seeds, log=lambda m: print(m, file=sys.stderr)
        )
        for seed in seeds:
            for d in dets:
                for s in strategies:
                    print(d, strategy_spec(s).short, seed)
        return 0
    config_dir = args.config_dir or ("configs/voc" if args.full else None)
    t0 = time.perf_counter()
    command = args.command
    if command is None and sys.argv[1:2] == ["reproduce"]:
        command = "mgdet " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    grid, files = run_reproduce(
        out=args.out, detectors=detectors, strategies=_names(args.strategies), seeds=args.seeds,
        data=args.data, config_dir=config_dir, epochs=args.epochs, quick=args.quick, overrides=args.set,
        progress=not args.no_progress, command=command or "", results_dir=args.results_dir,
        results_name=args.results_name, report_only=args.report_only,
    )  # fmt: skip
    headers, rows = summary_rows(grid)
    print(format_table(rows, headers, align=["l", "l"] + ["r"] * (len(headers) - 2)))
    print(f"{len(grid.records)} runs finished, {time.perf_counter() - t0:.0f} s; written: "
          + ", ".join(str(p) for p in files.values()))  # fmt: skip
    if grid.interrupted:
        print("interrupted: run the same command again to continue", file=sys.stderr)
        return 130
    return 0
