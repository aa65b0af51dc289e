"""What several verbs share: option definitions, argument types, table printing, the torch device.

Imports nothing heavy at module level (the parser is built without torch; ``mgdet --help`` stays fast).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import Any

from mgdet.catalog import DATA_FORMATS
from mgdet.limits import MAX_INPUT_SIZE
from mgdet.postprocess import PAPER_POSTPROCESS

#: Dataset layouts every verb accepts (``auto`` detects the layout where a verb allows it).
CHECKPOINT_HELP = "checkpoint file (.pth), or zoo:NAME for a detector shipped with mgdet (`mgdet zoo` lists them)"
DEVICE_HELP = "auto | cpu | cuda | cuda:N (default: auto = CUDA when available, else CPU)"
#: ONNX opsets ``mgdet export`` writes (the TorchScript exporter's range that has every operator used)
OPSETS: tuple[int, int] = (13, 20)


def print_table(
    rows: Sequence[Sequence[Any]], headers: Sequence[str], title: str | None = None, align: Sequence[str] | None = None
) -> None:
    """Print ``rows`` under ``headers`` as a text table (floats formatted by ``format_table``)."""
    from mgdet.utils.table import format_table

    if title:
        print(title)
    print(format_table(rows, headers, align=align))


def add_device(p: argparse.ArgumentParser) -> None:
    """``--device``: where the model runs (``auto`` everywhere)."""
    p.add_argument("--device", default="auto", type=device_name, help=DEVICE_HELP)


def add_format(p: argparse.ArgumentParser, text: str, auto: bool = False, default: str | None = None) -> None:
    """``--format``: a dataset layout of :data:`DATA_FORMATS` (plus ``auto`` when ``auto``)."""
    choices = ("auto", *DATA_FORMATS) if auto else DATA_FORMATS
    p.add_argument("--format", default=default, choices=choices, help=text)


def add_no_progress(p: argparse.ArgumentParser, text: str = "no progress bar") -> None:
    p.add_argument("--no-progress", action="store_true", help=text)


def add_inference(p: argparse.ArgumentParser) -> None:
    """Post-processing options with the paper's defaults (:data:`mgdet.postprocess.PAPER_POSTPROCESS`),
    ``--device`` and ``--no-progress``."""
    d = PAPER_POSTPROCESS
    p.add_argument("--score-thresh", type=unit_float, default=d.score_thresh,
                   help=f"drop detections below this score ({d.score_thresh:g})")  # fmt: skip
    p.add_argument("--nms-iou", type=unit_float, default=d.nms_iou, help=f"class-aware NMS IoU ({d.nms_iou:g})")
    p.add_argument("--max-det", type=positive_int, default=d.max_det, help=f"detections kept per image ({d.max_det})")
    add_device(p)
    add_no_progress(p)


def _int(text: str, lo: int, hi: int | None = None, unit: str = "") -> int:
    """``text`` as an integer in ``[lo, hi]`` or an ``argparse.ArgumentTypeError`` saying why not."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        raise argparse.ArgumentTypeError(f"must be {bound}{unit}, got {value}")
    return value


def input_size(text: str) -> int:
    """argparse type: an input size from 32 to :data:`mgdet.limits.MAX_INPUT_SIZE` pixels (checked before any
    tensor of that size is allocated)."""
    return _int(text, 32, MAX_INPUT_SIZE, unit=" pixels")


def positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    return _int(text, 1)


def unit_float(text: str) -> float:
    """argparse type: a number in [0, 1] (a score or IoU threshold)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def device_name(text: str) -> str:
    """argparse type: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use {DEVICE_HELP.split(' (')[0]}")
    return text


def opset(text: str) -> int:
    """argparse type: an ONNX opset of :data:`OPSETS`."""
    return _int(text, *OPSETS, unit=" (the ONNX opsets mgdet export writes)")


def torch_device(name: str) -> Any:
    """``--device`` -> a ``torch.device`` (``auto``: CUDA when available); imports torch."""
    from mgdet.engine.distributed import DistInfo, resolve_device

    return resolve_device(name, DistInfo())
