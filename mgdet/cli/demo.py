"""``mgdet demo``: the zoo's trained static IoU and Mutual Guidance detectors evaluated live, a short live
training of both, a report."""

from __future__ import annotations

import argparse
import sys

from mgdet.cli.common import add_no_progress, input_size, positive_int
from mgdet.demo.recipe import DEFAULT_DATA, DEMO_TRAIN_EPOCHS, RECIPE_EPOCHS
from mgdet.limits import MAX_INPUT_SIZE

DEMO_HELP = f"""What Mutual Guidance does, in about 5 minutes on two CPU cores:
1. generate the CPU benchmark if it is missing (default ./{DEFAULT_DATA});
2. evaluate the zoo's trained RetinaNet-MobileNetV2 detectors, static IoU matching (zoo:retinanet_mbv2_iou) and
   Mutual Guidance (zoo:retinanet_mbv2_mg), same recipe and seed, on its validation split, now (AP, AP50,
   AP75, APs/m/l, misalignment rate);
3. train the same two rules now from ImageNet for --train-epochs epochs of 1024 images ({DEMO_TRAIN_EPOCHS} by
   default: a first look at training; the zoo's detectors were trained for {RECIPE_EPOCHS}), with progress bars;
4. print the tables and write OUT/report (report.md, table.png, detections side by side, misalignment.png,
   the live runs' loss and AP over the zoo runs' full curves).
The report says which numbers were computed now and which come from the shipped training (where and how long).
Finished live runs in OUT are reused, so an interrupted demo continues where it stopped. --full trains the whole
recipe live ({RECIPE_EPOCHS} epochs per rule, about an hour on two CPU cores) and compares it with the zoo."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``demo`` verb."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser("demo", help="trained IoU vs Mutual Guidance detectors evaluated live + a short live training "
                       "(CPU, ~5 min)", description=DEMO_HELP, formatter_class=fmt)  # fmt: skip
    p.add_argument("--out", default="mgdet_runs/demo", help="output folder: live runs and report/ (mgdet_runs/demo)")
    p.add_argument("--data", help=f"benchmark folder, generated if missing ({DEFAULT_DATA}; "
                   "--quick: OUT/benchmark_quick)")  # fmt: skip
    p.add_argument("--train-epochs", "--epochs", dest="train_epochs", type=positive_int, metavar="N",
                   help=f"live training: epochs of 1024 images per rule ({DEMO_TRAIN_EPOCHS}; the recipe: "
                        f"{RECIPE_EPOCHS})")  # fmt: skip
    p.add_argument("--no-train", action="store_true", help="skip the live training (evaluate the zoo only)")
    p.add_argument("--full", action="store_true",
                   help=f"train the whole recipe live ({RECIPE_EPOCHS} epochs per rule, about an hour on two CPU "
                        "cores) and compare it with the zoo")  # fmt: skip
    p.add_argument("--size", type=input_size,
                   help=f"live training: input size in pixels, a multiple of 32 up to {MAX_INPUT_SIZE} "
                        "(recipe: 256)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="live training seed, the same for both runs (0, as the zoo)")
    p.add_argument("--quick", action="store_true", help="a tiny benchmark and a few training steps (smoke test)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for both live runs, e.g. --set train.lr=0.01 (repeatable)")  # fmt: skip
    add_no_progress(p, "no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mgdet.demo.pipeline import run_demo
    from mgdet.errors import MgdetError

    if args.full and (args.no_train or args.train_epochs):
        raise MgdetError("--full trains the whole recipe: use it without --no-train and --train-epochs")
    res = run_demo(out=args.out, data=args.data, train_epochs=args.train_epochs, train=not args.no_train,
                   full=args.full, size=args.size, seed=args.seed, quick=args.quick, overrides=args.set,
                   progress=not args.no_progress, workers=2)  # fmt: skip
    print(res.table)
    if res.grid is not None and res.grid.interrupted:
        print("interrupted: run `mgdet demo` again with the same options to continue", file=sys.stderr)
        return 130
    if res.headline:
        print(res.headline)
    print(f"total {res.wall_time_s / 60:.1f} min; report: {res.report_dir / 'report.md' if res.report_dir else '-'}")
    return 0
