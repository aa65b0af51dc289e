"""``mgdet eval CHECKPOINT``: COCO and VOC metrics and the misalignment rate of a checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path

from mgdet.cli.common import CHECKPOINT_HELP, add_format, add_inference, torch_device

#: the result files of ``eval`` in ``--out``
RESULTS = ("metrics.json", "detections_coco.json")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``eval`` verb."""
    p = sub.add_parser("eval", help="COCO and VOC metrics of a checkpoint",
                       description="Evaluate a checkpoint: AP, AP50, AP75, APs/m/l (COCO, via faster-coco-eval), "
                       "VOC07 mAP@0.5, the paper's VOC07 11-point AP averaged over IoU .50:.95, per-class AP "
                       "and the misalignment rate. Data defaults to the checkpoint's validation set.")  # fmt: skip
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("--data", help="dataset root (default: the one stored in the checkpoint)")
    add_format(p, "dataset format (default: stored)")
    p.add_argument("--split", help="split to evaluate (default: the stored validation split)")
    p.add_argument(
        "--out",
        help="folder for metrics.json and detections_coco.json (default: CHECKPOINT's folder/eval; "
        "zoo:NAME: mgdet_runs/eval/NAME)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace the metrics of an earlier eval in --out")
    p.add_argument("--class-map", metavar="SPEC",
                   help="evaluate on a dataset whose classes differ from the checkpoint's: same-names (match "
                        "by name, any order) or DATASET=CHECKPOINT,... renames; without it the lists must be "
                        "equal")  # fmt: skip
    p.add_argument("--no-ema", action="store_true", help="evaluate the raw weights even if EMA weights exist")
    add_inference(p)
    p.set_defaults(func=run)


def default_out(checkpoint: str) -> Path:
    """Where ``eval`` writes without ``--out``: beside a checkpoint file, ``mgdet_runs/eval/NAME`` for a zoo name."""
    from mgdet.zoo.catalog import PREFIX, is_zoo_ref

    if is_zoo_ref(checkpoint):
        return Path("mgdet_runs") / "eval" / checkpoint[len(PREFIX) :]
    return Path(checkpoint).parent / "eval"


def run(args: argparse.Namespace) -> int:
    from mgdet.engine.builders import build_dataset
    from mgdet.engine.checkpoint import (
        CheckpointError,
        check_class_names,
        load_checkpoint,
        load_detector,
        mapped_class_names,
        parse_class_map,
    )
    from mgdet.engine.config import from_dict
    from mgdet.engine.inference import evaluate_model
    from mgdet.evaluation import save_eval_json
    from mgdet.outputs import check_fresh, check_not_inputs, check_output_folder, folder_lock

    device = torch_device(args.device)
    det, run_cfg = load_detector(args.checkpoint, map_location=device, use_ema=not args.no_ema)
    stored_names = load_checkpoint(args.checkpoint).get("class_names")
    cfg = from_dict(run_cfg, f"{args.checkpoint} (stored config)")
    if args.data:
        cfg.data.root = args.data
    if args.format:
        cfg.data.format = args.format
    if args.split:
        cfg.data.val_split = args.split
    cfg.eval.score_thresh, cfg.eval.nms_iou, cfg.eval.max_det = args.score_thresh, args.nms_iou, args.max_det
    read_names = cfg.data.class_names or None
    if args.class_map is not None:  # explicit: read the dataset with the checkpoint's classes (renamed)
        if not stored_names:
            raise CheckpointError(f"{args.checkpoint}: --class-map needs the class names the checkpoint stores")
        read_names = mapped_class_names(stored_names, parse_class_map(args.class_map), args.checkpoint)
    dataset = build_dataset(cfg.data, train=False, class_names=read_names)
    if args.class_map is None:
        check_class_names(stored_names, dataset.class_names, args.checkpoint)
    if det.num_classes != len(dataset.class_names):
        raise CheckpointError(
            f"{args.checkpoint}: the model has {det.num_classes} classes, the dataset {len(dataset.class_names)}: "
            f"{list(dataset.class_names)}; evaluate on the dataset the model was trained on"
        )
    out = Path(args.out) if args.out else default_out(args.checkpoint)
    check_output_folder(out, [cfg.data.root])  # before anything is computed or written
    check_not_inputs([out / n for n in RESULTS], [args.checkpoint])
    check_fresh(out, RESULTS, args.overwrite)
    with folder_lock(out, "eval", print):  # a second eval into the same --out is refused
        result = evaluate_model(det, dataset, cfg.eval, device, progress=not args.no_progress)
        save_eval_json(result, out / "metrics.json")  # with the precision array, for PR curves
        result.save_coco_results(out / "detections_coco.json")
    print(result.summary(per_class=True))
    print(result.summary())
    print(f"misalignment rate: {result.metrics['misalign']:.4f}")
    if result.skipped_images:
        print(f"left out {len(result.skipped_images)} image(s) that failed to decode (data.on_error=skip), "
              f"e.g. {result.skipped_images[0]}")  # fmt: skip
    print(f"written: {out / 'metrics.json'}, {out / 'detections_coco.json'}")
    return 0
