"""``mgdet detect CHECKPOINT IMAGES... --out DIR``: annotated images and detection files, torch or onnxruntime."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mgdet.cli.common import CHECKPOINT_HELP, add_inference, positive_int, print_table, torch_device, unit_float
from mgdet.errors import OutputError

#: the result files of ``detect`` in ``--out``
RESULTS = ("detections.json", "detections_coco.json")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``detect`` verb."""
    p = sub.add_parser("detect", help="detect objects in images, write annotated copies and a json",
                       description="Run a checkpoint on image files or folders.")  # fmt: skip
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--show-thresh", type=unit_float, default=0.3, help="draw boxes with at least this score (0.3)")
    p.add_argument("--batch-size", type=positive_int, default=8, help="images per forward pass (8)")
    p.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="torch: CHECKPOINT is a .pth; onnx: an `mgdet export` file run with onnxruntime (torch)",
    )
    p.add_argument("--on-error", choices=("raise", "skip"), default="raise",
                   help="an unreadable image: raise = stop and name it (the results so far are written); skip = go on, "
                        "list it in detections.json with its error and count it in the summary (raise)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true",
                   help="replace the results of an earlier detect in --out (only the files it recorded)")  # fmt: skip
    add_inference(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from mgdet.deploy import write_detections
    from mgdet.engine.inference import collect_images
    from mgdet.outputs import folder_lock

    args.paths = collect_images(args.images)
    file_names = check_outputs(args, args.paths)  # before anything is loaded or written
    out = Path(args.out)
    with folder_lock(out, "detect", print):  # a second detect into the same --out is refused
        if args.backend == "onnx":  # CHECKPOINT is a file written by `mgdet export`
            stream, names = _onnx_stream(args)
            done = "annotated images, detections.json and detections_coco.json written to {} (onnxruntime)"
        else:
            stream, names = _torch_stream(args)
            done = "annotated images and detections.json written to {}"
        counts = write_detections(stream, out, names, args.show_thresh, file_names)
    print_table(counts[:50], ["image", f"boxes >= {args.show_thresh}", "top score"])
    if len(counts) > 50:
        print(f"... {len(counts) - 50} more")
    skipped = [row[0] for row in counts if row[2] == "unreadable"]
    if skipped:
        print(f"skipped {len(skipped)} unreadable image(s), listed in detections.json with their error: "
              + ", ".join(skipped[:5]) + (" ..." if len(skipped) > 5 else ""))  # fmt: skip
    print(done.format(out))
    return 0


def check_outputs(args: argparse.Namespace, paths: list[Path]) -> dict[Path, str]:
    """The write rule for ``detect``: ``--out`` is no input folder or file, no annotated copy lands on an
    input, an earlier run's results are replaced only with ``--overwrite`` (and only files it recorded).
    Returns the annotated copy's name of each image (colliding stems get distinct names)."""
    from mgdet.outputs import check_fresh, check_not_inputs, check_output_folder, distinct_names

    out = Path(args.out)
    inputs = [Path(p) for p in args.images] + [Path(args.checkpoint)]
    check_output_folder(out, inputs)
    names = dict(zip(paths, distinct_names(paths)))
    check_not_inputs([out / n for n in (*names.values(), *RESULTS)], [*paths, Path(args.checkpoint)])
    check_fresh(out, RESULTS, args.overwrite)
    recorded = _recorded(out / RESULTS[0]) if args.overwrite else set()
    foreign = [n for n in names.values() if (out / n).exists() and n not in recorded]
    if foreign:
        raise OutputError(
            f"--out {out} already holds {foreign[0]} (and {len(foreign) - 1} more) that no earlier mgdet detect "
            "recorded; choose another folder"
        )
    return names


def _recorded(path: Path) -> set[str]:
    """The annotated copies an earlier ``detections.json`` lists."""
    try:
        return {str(r.get("annotated")) for r in json.loads(path.read_text()) if isinstance(r, dict)}
    except (OSError, ValueError, TypeError):
        return set()


def _torch_stream(args: argparse.Namespace) -> tuple[Iterator[Any], list[str] | None]:
    """Detections of a ``.pth`` checkpoint, one image at a time, and its class names."""
    from mgdet.engine.checkpoint import load_checkpoint, load_detector
    from mgdet.engine.config import EvalConfig
    from mgdet.engine.inference import detect_images

    device = torch_device(args.device)
    det, run_cfg = load_detector(args.checkpoint, map_location=device)
    names = list(run_cfg.get("data", {}).get("class_names") or []) or None
    if names is None:
        names = list(load_checkpoint(args.checkpoint).get("class_names", []))
    paths = args.paths
    ecfg = EvalConfig(score_thresh=args.score_thresh, nms_iou=args.nms_iou, max_det=args.max_det)
    stream = detect_images(det, paths, ecfg, device, batch_size=args.batch_size, progress=not args.no_progress,
                           on_error=args.on_error)  # fmt: skip
    return stream, names


def _onnx_stream(args: argparse.Namespace) -> tuple[Iterator[Any], list[str]]:
    """Detections of a file written by ``mgdet export``, computed with onnxruntime, and its class names."""
    from dataclasses import replace

    from mgdet.deploy import OnnxDetector, detect_paths

    backend = OnnxDetector(args.checkpoint, providers=_providers(args.device))
    # the command line wins over the file's stored values (pre_nms_topk stays the stored one)
    backend.params = replace(backend.params, score_thresh=args.score_thresh, nms_iou=args.nms_iou,
                             max_det=args.max_det)  # fmt: skip
    paths = args.paths
    stream = detect_paths(backend, paths, batch_size=args.batch_size, progress=not args.no_progress,
                          on_error=args.on_error)  # fmt: skip
    return stream, backend.class_names


def _providers(device: str) -> list[str]:
    """onnxruntime execution providers for ``--device`` (CUDA when asked for or ``auto`` and available)."""
    import onnxruntime as ort

    if device.startswith("cuda") or device == "auto":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device.startswith("cuda"):
            print("onnxruntime has no CUDA provider here; running on CPU", file=sys.stderr)
    return ["CPUExecutionProvider"]
