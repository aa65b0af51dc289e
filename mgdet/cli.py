"""The ``mgdet`` command line: thin verbs over library functions. ``mgdet VERB --help`` explains each."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

EPILOG = """examples:
  mgdet demo                                    # benchmark, IoU vs Mutual Guidance, report
  mgdet train configs/voc/retinanet_r18_mg.yaml data.root=~/data/VOCdevkit train.epochs=2
  torchrun --nproc_per_node 4 -m mgdet train configs/coco/retinanet_r18_mg.yaml data.root=~/data/coco
  mgdet eval runs/exp/last.pth
  mgdet detect runs/exp/last.pth photos/ --out detections/
  mgdet data check ~/data/VOCdevkit/VOC2007
"""


def _print_table(rows, headers, title: str | None = None) -> None:
    from mgdet.engine.table import format_table

    if title:
        print(title)
    print(format_table(rows, headers))


# ------------------------------------------------------------------------------------------------ train
def _train(args: argparse.Namespace) -> int:
    from mgdet.engine.config import load_config
    from mgdet.engine.train import train

    cfg = load_config(args.config, args.overrides)
    resume = args.resume
    if resume == "auto":
        last = Path(cfg.output_dir) / "last.pth"
        resume = str(last) if last.is_file() else None
    t0 = time.perf_counter()
    result = train(cfg, resume=resume, progress=not args.no_progress, tensorboard=not args.no_tensorboard)
    if not result.history or int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        return 130 if result.interrupted else 0
    last = result.history[-1]
    rows = [
        ("output", str(result.output_dir)),
        ("epochs / steps", f"{last['epoch']} / {last['iter']}"),
        ("final loss (cls + reg)", f"{last.get('loss', float('nan')):.4f}"),
        ("wall time", f"{time.perf_counter() - t0:.1f} s"),
    ]
    for k in ("AP", "AP50", "AP75", "APs", "APm", "APl", "voc07_map50", "misalign"):
        if k in result.final_metrics:
            rows.append((k, f"{result.final_metrics[k]:.4f}"))
    rows.append(("checkpoint", str(result.checkpoint)))
    _print_table(rows, ["", "value"], "interrupted (resume with --resume auto)" if result.interrupted else None)
    return 130 if result.interrupted else 0


# ------------------------------------------------------------------------------------------------- eval
def _eval(args: argparse.Namespace) -> int:
    from mgdet.engine.builders import build_dataset
    from mgdet.engine.checkpoint import load_detector
    from mgdet.engine.config import from_dict
    from mgdet.engine.distributed import DistInfo, resolve_device
    from mgdet.engine.evaluate import EvalResult
    from mgdet.engine.inference import evaluate_model

    device = resolve_device(args.device, DistInfo())
    det, run_cfg = load_detector(args.checkpoint, map_location=device, use_ema=not args.no_ema)
    cfg = from_dict(run_cfg, f"{args.checkpoint} (stored config)")
    if args.data:
        cfg.data.root = args.data
    if args.format:
        cfg.data.format = args.format
    if args.split:
        cfg.data.val_split = args.split
    cfg.eval.score_thresh, cfg.eval.nms_iou, cfg.eval.max_det = args.score_thresh, args.nms_iou, args.max_det
    class_names = cfg.data.class_names or None
    dataset = build_dataset(cfg.data, train=False, class_names=class_names)
    result: EvalResult = evaluate_model(det, dataset, cfg.eval, device, progress=not args.no_progress)
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    from mgdet.viz.curves import save_eval_json

    save_eval_json(result, out / "metrics.json")  # with the precision array, for PR curves
    result.save_coco_results(out / "detections_coco.json")
    print(result.summary(per_class=True))
    print(result.summary())
    print(f"misalignment rate: {result.metrics['misalign']:.4f}")
    print(f"written: {out / 'metrics.json'}, {out / 'detections_coco.json'}")
    return 0


# ----------------------------------------------------------------------------------------------- detect
def _detect(args: argparse.Namespace) -> int:
    if args.backend == "onnx":  # CHECKPOINT is a file written by `mgdet export`
        from mgdet.deploy import detect_onnx

        return detect_onnx(args)
    from mgdet.engine.checkpoint import load_detector
    from mgdet.engine.config import EvalConfig
    from mgdet.engine.distributed import DistInfo, resolve_device
    from mgdet.engine.inference import collect_images, detect_images

    device = resolve_device(args.device, DistInfo())
    det, run_cfg = load_detector(args.checkpoint, map_location=device)
    names = list(run_cfg.get("data", {}).get("class_names") or []) or None
    if names is None:
        from mgdet.engine.checkpoint import load_checkpoint

        names = list(load_checkpoint(args.checkpoint).get("class_names", []))
    paths = collect_images(args.images)
    from mgdet.deploy import write_detections

    ecfg = EvalConfig(score_thresh=args.score_thresh, nms_iou=args.nms_iou, max_det=args.max_det)
    stream = detect_images(det, paths, ecfg, device, batch_size=args.batch_size, progress=not args.no_progress)
    out = Path(args.out)
    counts = write_detections(stream, out, names, args.show_thresh)
    _print_table(counts[:50], ["image", f"boxes >= {args.show_thresh}", "top score"])
    if len(counts) > 50:
        print(f"... {len(counts) - 50} more")
    print(f"annotated images and detections.json written to {out}")
    return 0


# ------------------------------------------------------------------------------------------------- data
def _input_size(text: str) -> int:
    """argparse type: an input size of at least 32 pixels."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 32:
        raise argparse.ArgumentTypeError(f"must be at least 32 pixels, got {value}")
    return value


def _data_check(args: argparse.Namespace) -> int:
    from mgdet.data import check_dataset

    report = check_dataset(args.root, format=args.format, split=args.split)
    print(report.summary())
    if report.records and args.detector != "none":
        from mgdet.engine.coverage import records_coverage

        cov = records_coverage(report.records, args.detector, args.backbone, args.input_size,
                               anchor_base=args.anchor_base)  # fmt: skip
        print(cov.line() if cov else f"anchor coverage: not applicable ({args.detector} is anchor-free)")
    return 0 if report.ok else 1


def _data_generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mgdet.data.benchmark import DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, generate_benchmark, generate_cli_summary

    num_train = args.size if args.size is not None else DEFAULT_NUM_TRAIN
    num_val = args.val_size if args.val_size is not None else (
        DEFAULT_NUM_VAL if args.size is None else max(1, num_train // 5))  # fmt: skip
    bar = tqdm(total=num_train + num_val, desc="generate", unit="img", disable=args.no_progress)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    info = generate_benchmark(args.out, seed=args.seed, num_train=num_train, num_val=num_val,
                              overwrite=args.overwrite, progress=progress, workers=args.workers)  # fmt: skip
    bar.close()
    _print_table(generate_cli_summary(info), ["", "value"])
    return 0


def _selfcheck(args: argparse.Namespace) -> int:
    """Assign a tiny batch with every strategy and print the label counts."""
    import torch

    from mgdet.anchors import generate_anchors, paper_layout
    from mgdet.assign import IGNORED, STRATEGIES, assign
    from mgdet.boxes import decode

    g = torch.Generator().manual_seed(0)
    anchors = generate_anchors(paper_layout(), args.size)
    xy = torch.rand(2, 4, 2, generator=g) * args.size * 0.6
    gt_boxes = torch.cat([xy, xy + 20 + torch.rand(2, 4, 2, generator=g) * args.size * 0.35], -1)
    gt_labels = torch.randint(0, 5, (2, 4), generator=g)
    pred_boxes = decode(torch.randn(2, len(anchors), 4, generator=g) * 0.5, anchors)
    pred_scores = torch.rand(2, len(anchors), 5, generator=g)
    rows = []
    for s in STRATEGIES:
        t0 = time.perf_counter()
        a = assign(s, anchors, gt_boxes, gt_labels, pred_boxes, pred_scores)
        ms = (time.perf_counter() - t0) * 1000
        rows.append((s, int((a.cls_gt >= 0).sum()), int((a.cls_gt == IGNORED).sum()), int(a.reg_pos.sum()), ms))
    _print_table(rows, ["strategy", "cls pos", "ignored", "reg pos", "ms"],
                 f"{len(anchors)} anchors at {args.size}px, 2 images x 4 GT")  # fmt: skip
    return 0


# ----------------------------------------------------------------------------------------------- parser
def _common_infer(p: argparse.ArgumentParser) -> None:
    p.add_argument("--score-thresh", type=float, default=0.005, help="drop detections below this score (0.005)")
    p.add_argument("--nms-iou", type=float, default=0.5, help="IoU threshold of class-aware NMS (0.5)")
    p.add_argument("--max-det", type=int, default=300, help="detections kept per image (300)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (auto)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mgdet",
        description="Train and evaluate one-stage detectors with Mutual Guidance label assignment.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from mgdet import __version__

    parser.add_argument("--version", action="version", version=f"mgdet {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")

    p = sub.add_parser("train", help="train a detector from a YAML config",
                       description="Train a detector. CONFIG is a YAML file (see configs/); KEY=VALUE pairs "
                       "override it, e.g. train.epochs=2 data.root=/data/VOCdevkit. Under torchrun the same "
                       "command trains with DDP.")  # fmt: skip
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (YAML values)")
    p.add_argument("--resume", metavar="CKPT", help="continue from a checkpoint; 'auto' = OUTPUT_DIR/last.pth")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    p.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard logs")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="COCO and VOC metrics of a checkpoint",
                       description="Evaluate a checkpoint: AP, AP50, AP75, APs/m/l (COCO, via faster-coco-eval), "
                       "VOC07 mAP@0.5, the paper's VOC07 11-point AP averaged over IoU .50:.95, per-class AP "
                       "and the misalignment rate. Data defaults to the checkpoint's validation set.")  # fmt: skip
    p.add_argument("checkpoint", help="checkpoint file (.pth)")
    p.add_argument("--data", help="dataset root (default: the one stored in the checkpoint)")
    p.add_argument("--format", choices=("voc", "coco", "yolo"), help="dataset format (default: stored)")
    p.add_argument("--split", help="split to evaluate (default: the stored validation split)")
    p.add_argument("--out", help="folder for metrics.json and detections_coco.json (default: beside checkpoint)")
    p.add_argument("--no-ema", action="store_true", help="evaluate the raw weights even if EMA weights exist")
    _common_infer(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser("detect", help="detect objects in images, write annotated copies and a json",
                       description="Run a checkpoint on image files or folders.")  # fmt: skip
    p.add_argument("checkpoint", help="checkpoint file (.pth)")
    p.add_argument("images", nargs="+", help="image files or folders (searched recursively)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--show-thresh", type=float, default=0.3, help="draw boxes with at least this score (0.3)")
    p.add_argument("--batch-size", type=int, default=8, help="images per forward pass (8)")
    p.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default="torch",
        help="torch: CHECKPOINT is a .pth; onnx: an `mgdet export` file run with onnxruntime (torch)",
    )
    _common_infer(p)
    p.set_defaults(func=_detect)

    data = sub.add_parser("data", help="dataset tools: check, generate",
                          description="Dataset tools.").add_subparsers(dest="data_verb", metavar="ACTION")  # fmt: skip
    p = data.add_parser("check", help="list every problem of a dataset at once",
                        description="Validate annotations and image headers; print counts, the class histogram, "
                        "repairs, errors and broken files. Exit code 1 if problems were found.")  # fmt: skip
    p.add_argument("root", help="dataset folder (VOC, YOLO) or COCO json / folder")
    p.add_argument("--format", default="auto", choices=("auto", "voc", "coco", "yolo"), help="layout (auto)")
    p.add_argument("--split", help="split name (VOC: ImageSets/Main/<split>.txt; COCO: instances_<split>.json)")
    p.add_argument(
        "--detector",
        default="retinanet",
        choices=("fssd", "retinanet", "rfbnet", "fcos", "none"),
        help="also print the share of boxes some anchor of this detector matches with IoU >= 0.5 "
        "(retinanet; 'none' skips it)",
    )
    p.add_argument(
        "--backbone",
        default="mobilenet_v2",
        choices=("mobilenet_v2", "resnet18", "vgg16"),
        help="backbone of --detector (mobilenet_v2; RFBNet needs vgg16)",
    )
    p.add_argument(
        "--input-size", type=_input_size, default=320, help="network input size for the anchor coverage (320)"
    )
    p.add_argument(
        "--anchor-base",
        type=float,
        default=24.0,
        help="smallest anchor side in pixels (the paper's 24 at 320 px; model.anchor_base)",
    )
    p.set_defaults(func=_data_check)
    p = data.add_parser("generate", help="write the shipped CPU benchmark dataset",
                        description="Generate the deterministic benchmark (COCO json + VOC xml) from photographs "
                        "bundled with scikit-image / scikit-learn / matplotlib.")  # fmt: skip
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--size", type=int, help="number of training images (default: the benchmark's)")
    p.add_argument("--val-size", type=int, help="number of validation images (default: the benchmark's, or size/5)")
    p.add_argument("--workers", type=int, default=1, help="rendering processes (1)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing, different benchmark")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_data_generate)

    p = sub.add_parser("selfcheck", help="run every assignment strategy on a tiny random batch",
                       description="Quick check that the assignment core runs on this machine.")  # fmt: skip
    p.add_argument("--size", type=int, default=320, help="input size in pixels (320)")
    p.set_defaults(func=_selfcheck)

    for name in ("cli_demo", "cli_visualize", "cli_export"):
        try:
            module = __import__(f"mgdet.{name}", fromlist=["register"])
        except ModuleNotFoundError as e:  # optional verb modules not installed in this build
            if e.name != f"mgdet.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
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
