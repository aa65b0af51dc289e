"""The ``mgdet`` command line: thin verbs over library functions. ``mgdet VERB --help`` explains each.

One module per verb (:data:`VERBS`, in ``--help`` order), each with ``register(subparsers)`` that adds its
parser and sets ``func``; library code is imported inside the handlers, so building the parser (and
``mgdet --help``) does not import torch. :func:`main` turns the library's expected errors into exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from mgdet.cli import data, demo, detect, evaluate, export, reproduce, selfcheck, train, visualize

EPILOG = """examples:
  mgdet demo                                    # benchmark, IoU vs Mutual Guidance, report
  mgdet train configs/voc/retinanet_r18_mg.yaml data.root=~/data/VOCdevkit train.epochs=2
  torchrun --nproc_per_node 4 -m mgdet train configs/coco/retinanet_r18_mg.yaml data.root=~/data/coco
  mgdet eval runs/exp/last.pth
  mgdet detect runs/exp/last.pth photos/ --out detections/
  mgdet data check ~/data/VOCdevkit/VOC2007
"""

#: The verb modules, in the order ``mgdet --help`` lists them.
VERBS = (train, evaluate, detect, data, selfcheck, demo, reproduce, visualize, export)


def build_parser() -> argparse.ArgumentParser:
    """The ``mgdet`` parser with every verb of :data:`VERBS`."""
    from mgdet import __version__

    parser = argparse.ArgumentParser(
        prog="mgdet",
        description="Train and evaluate one-stage detectors with Mutual Guidance label assignment.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"mgdet {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        verb.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``mgdet ARGV``; returns the exit code (2: a configuration, data or checkpoint error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from mgdet.data import DatasetError
    from mgdet.engine.checkpoint import CheckpointError
    from mgdet.engine.config import ConfigError
    from mgdet.engine.train import TrainingError

    try:
        return int(args.func(args) or 0)
    except (ConfigError, CheckpointError, DatasetError, TrainingError, FileNotFoundError) as e:
        print(f"mgdet {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
