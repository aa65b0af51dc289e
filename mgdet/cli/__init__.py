"""The ``mgdet`` command line: thin verbs over library functions. ``mgdet VERB --help`` explains each.

One module per verb (:data:`VERBS`, in ``--help`` order), each with ``register(subparsers)`` that adds its
parser and sets ``func``; library code is imported inside the handlers, so building the parser (and
``mgdet --help``) does not import torch. :func:`main` turns every mgdet error into one line and exit code 2.
"""

from __future__ import annotations

import argparse
import errno
import sys

from mgdet.cli import data, demo, detect, evaluate, export, reproduce, selfcheck, train, visualize, zoo

EPILOG = """examples:
  mgdet demo                                    # trained IoU vs Mutual Guidance detectors, live
  mgdet zoo                                     # the trained detectors shipped with mgdet
  mgdet eval zoo:retinanet_mbv2_mg              # evaluate one of them on the benchmark
  mgdet train configs/voc/retinanet_r18_mg.yaml data.root=~/data/VOCdevkit train.epochs=2
  torchrun --nproc_per_node 4 -m mgdet train configs/coco/retinanet_r18_mg.yaml data.root=~/data/coco
  mgdet eval runs/exp/last.pth
  mgdet detect runs/exp/last.pth photos/ --out detections/
  mgdet data check ~/data/VOCdevkit/VOC2007
"""

#: The verb modules, in the order ``mgdet --help`` lists them.
VERBS = (train, evaluate, detect, data, selfcheck, demo, reproduce, visualize, export, zoo)


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
    parser.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        verb.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``mgdet ARGV``; returns the exit code.

    Every :class:`mgdet.errors.MgdetError` and every OS error on a named path (unwritable output, missing
    file, disk full) becomes one line on stderr and exit code 2; any other exception is reported as an
    internal error in one line with exit code 1. ``--debug`` re-raises, to show the traceback.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from mgdet.errors import MgdetError

    verb = " ".join(v for v in (args.verb, getattr(args, "data_verb", None)) if v)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return 130
    except (MgdetError, OSError) as e:
        if args.debug:
            raise
        print(f"mgdet {verb}: error: {error_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        if args.debug:
            raise
        worker = worker_error(e)
        if worker is not None and worker[0].startswith("mgdet."):  # a user error, raised in a worker
            print(f"mgdet {verb}: error: {error_line(e)}", file=sys.stderr)
            return 2
        print(f"mgdet {verb}: internal error: {type(e).__name__}: {error_line(e)} "
              "(please report it; rerun with mgdet --debug to see the traceback)", file=sys.stderr)  # fmt: skip
        return 1


def error_line(e: BaseException) -> str:
    """``e`` as one line; an OS error names its path(s) and says what to do."""
    if isinstance(e, OSError) and e.filename is not None:
        paths = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        reason = e.strerror or str(e)
        hint = {
            errno.EACCES: "choose a folder you can write to",
            errno.EROFS: "choose a folder you can write to",
            errno.ENOSPC: "free some disk space or choose another folder (earlier files were kept)",
            errno.ENOTDIR: "a path component is a file, not a folder: choose another path",
            errno.EEXIST: "choose another path",
            errno.EISDIR: "this is a folder: give a file name",
        }.get(e.errno or 0)
        return f"{paths}: {reason}" + (f"; {hint}" if hint else "")
    worker = worker_error(e)
    if worker is not None:
        return f"{worker[1]} (raised in a data loader worker)"
    return " ".join(str(e).split()) or type(e).__name__


#: how torch re-raises an exception of a DataLoader worker: a message holding the worker's whole traceback
_WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def worker_error(e: BaseException) -> tuple[str, str] | None:
    """``(exception type, message)`` of the error a data loader worker raised, when ``e`` is torch's re-raise
    of it (whose text holds the worker's traceback); None for any other exception."""
    text = str(e)
    if _WORKER_TRACEBACK not in text:
        return None
    last = [line for line in text.splitlines() if line.strip()][-1].strip()  # "pkg.Type: message"
    name, sep, message = last.partition(": ")
    return (name, " ".join(message.split())) if sep else (type(e).__name__, last)


if __name__ == "__main__":
    sys.exit(main())
