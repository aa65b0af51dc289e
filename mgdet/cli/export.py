"""``mgdet export CHECKPOINT --onnx FILE``: write a checkpoint as an ONNX file (model + box decoding)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mgdet.cli.common import CHECKPOINT_HELP, OPSETS, input_size, opset, print_table
from mgdet.errors import MgdetError, OutputError

DESCRIPTION = (
    "Export a checkpoint to ONNX: backbone + neck + head + box decoding. Input 'images' [B,3,S,S] float "
    "RGB in 0..1 (normalization is inside the graph); outputs 'scores' [B,A,C] (sigmoid; FCOS: "
    "sqrt(cls*centerness)) and 'boxes' [B,A,4] xyxy in input pixels, clipped. NMS is not in the graph: "
    "mgdet.postprocess (numpy, identical to mgdet's NMS) does threshold / top-k / class-aware "
    "NMS / max_det. Class names and post-processing parameters are stored in the file's metadata. "
    "Run it with: mgdet detect FILE.onnx IMAGES... --out DIR --backend onnx"
)


def run(args: argparse.Namespace) -> int:
    from mgdet.export import DEFAULT_OPSET, export_checkpoint

    try:
        import onnx  # noqa: F401
    except ModuleNotFoundError:
        raise MgdetError("mgdet export needs the 'onnx' package: pip install 'mgdet[deploy]'") from None
    from mgdet.outputs import check_not_inputs, check_writable

    check_not_inputs([args.onnx], [args.checkpoint])  # before anything is written
    check_writable(Path(args.onnx).parent, "--onnx")  # before the export's work
    if Path(args.onnx).exists() and not args.overwrite:
        raise OutputError(f"--onnx {args.onnx} already exists; choose another name, or pass --overwrite to replace it")
    version = args.opset or DEFAULT_OPSET
    _, summary = export_checkpoint(
        args.checkpoint, args.onnx, input_size=args.input_size, dynamic_batch=args.dynamic_batch, opset=version
    )
    pp = summary.pop("postprocess")
    rows = [(k, str(v)) for k, v in summary.items()]
    rows.append(("postprocess", ", ".join(f"{k}={v}" for k, v in pp.items())))
    rows.append(("check", "onnx.checker passed"))
    print_table(rows, ["", "value"])
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``export`` verb."""
    p = sub.add_parser("export", help="export a checkpoint to ONNX (model + box decoding)", description=DESCRIPTION)
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--onnx", required=True, metavar="FILE", help="output .onnx file")
    p.add_argument("--input-size", type=input_size, metavar="S",
                   help="square input size S baked into the graph (default: the checkpoint's)")  # fmt: skip
    p.add_argument("--dynamic-batch", action="store_true",
                   help="symbolic batch axis (default: batch fixed to 1)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing --onnx file")
    p.add_argument("--opset", type=opset, metavar="N", help=f"ONNX opset, {OPSETS[0]}-{OPSETS[1]} (17)")
    p.set_defaults(func=run)
