"""``mgdet demo``: generate the benchmark, train static IoU and Mutual Guidance, compare, write a report."""

from __future__ import annotations

import argparse
import sys

from mgdet.cli.common import add_no_progress, positive_int
from mgdet.demo.recipe import DEFAULT_DATA, DEMO_EPOCHS, RECIPE_EPOCHS

DEMO_HELP = f"""Generate the CPU benchmark if it is missing (default ./mgdet_data/benchmark), train RetinaNet
(frozen MobileNetV2 ImageNet backbone, light head, 256 px) twice with the same seed and the benchmark recipe
shortened to {DEMO_EPOCHS} epochs - static IoU anchor matching and Mutual Guidance - evaluate both on the
validation split, print a table (AP, AP50, AP75, APs/m/l, misalignment rate, train time) and write a report
folder (OUT/report: report.md, table.png, training curves, detections side by side). About a quarter of an
hour on two free CPU cores (see the README for measured times). Finished runs in OUT/runs are reused, so an
interrupted demo continues where it stopped. The full recipe ({RECIPE_EPOCHS} epochs) is what `mgdet reproduce` runs."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` verb."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("demo", help="benchmark + static IoU vs Mutual Guidance + report (CPU, ~15 min)",
                       description=DEMO_HELP, formatter_class=fmt)  # fmt: skip
    p.add_argument("--out", default="mgdet_runs/demo", help="output folder: runs/ and report/ (mgdet_runs/demo)")
    p.add_argument("--data", help=f"benchmark folder, generated if missing ({DEFAULT_DATA}; "
                   "--quick: OUT/benchmark_quick)")  # fmt: skip
    p.add_argument("--epochs", type=positive_int,
                   help=f"training epochs of 1024 images (demo: {DEMO_EPOCHS}; recipe: {RECIPE_EPOCHS})")  # fmt: skip
    p.add_argument("--size", type=int, help="input size in pixels, a multiple of 32 (recipe: 256)")
    p.add_argument("--seed", type=int, default=0, help="training seed, the same for both runs (0)")
    p.add_argument("--quick", action="store_true", help="a few iterations on a tiny benchmark (smoke test)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for both runs, e.g. --set train.lr=0.01 (repeatable)")  # fmt: skip
    add_no_progress(p, "no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mgdet.demo.pipeline import run_demo

    res = run_demo(out=args.out, data=args.data, epochs=args.epochs, size=args.size, seed=args.seed,
                   quick=args.quick, overrides=args.set, progress=not args.no_progress)  # fmt: skip
    print(res.table)
    if res.grid.interrupted:
        print("interrupted: run `mgdet demo` again with the same options to continue", file=sys.stderr)
        return 130
    print(f"total {res.wall_time_s / 60:.1f} min; report: {res.report_dir / 'report.md' if res.report_dir else '-'}")
    return 0
