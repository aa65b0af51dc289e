"""``mgdet visualize FIGURE``: the paper's figures as files (thin layer over :mod:`mgdet.viz`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mgdet.catalog import as_hw
from mgdet.cli.common import add_device, add_format, positive_int, print_table, torch_device
from mgdet.errors import InputFileError, MgdetError
from mgdet.outputs import check_writable

DEFAULT_IMAGES = 4


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: X)" unless the default is None or the help already explains it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``visualize`` verb and its figures; returns the verb's parser."""
    fmt = _HelpFormatter
    p = sub.add_parser(
        "visualize",
        help="draw the paper's figures (amplification, label assignment, detections, training curves)",
        description="Draw the paper's figures as PNG files (matplotlib, no display needed).",
    )
    p.set_defaults(func=lambda args: p.print_help() or 0)
    figures = p.add_subparsers(dest="figure", metavar="FIGURE")

    a = figures.add_parser(
        "amplification",
        help="Fig. 3: IoU_amplified vs IoU_anchor for several scores and sigmas",
        description="Fig. 3: IoU_amplified = IoU_anchor ** ((sigma - p) / sigma) for p in {0, .25, .5, .75, 1} "
        "and sigma in {1, 2, 3}. Needs no checkpoint.",
        formatter_class=fmt,
    )
    a.add_argument("--out", default="amplification.png", metavar="FILE", help="output image file (.png, .pdf or .svg)")
    a.set_defaults(func=_amplification)

    s = figures.add_parser(
        "assignment",
        help="Fig. 2/4: anchors whose label differs between static IoU and L2C / C2L",
        description="Fig. 2/4: for each image, the anchors that are positive for static IoU matching but not "
        "for Localize to Classify / Classify to Localize (red), or only for Localize to Classify (green) or "
        "Classify to Localize (yellow), given the checkpoint's predictions. Writes <out>/assignment_<id>.png "
        "and a per-anchor table (.csv, .md) with IoU_anchor, IoU_regressed, score and IoU_amplified.",
        formatter_class=fmt,
    )
    s.add_argument("checkpoint", metavar="CHECKPOINT", help="trained mgdet checkpoint (.pth) or zoo:NAME")
    _data_options(s)
    s.add_argument("--out", default="figures/assignment", metavar="DIR", help="output folder")
    s.set_defaults(func=_assignment)

    d = figures.add_parser(
        "detections",
        help="Fig. 5: two detectors side by side with the ground truth (NMS 0.5)",
        description="Fig. 5: the same images through two checkpoints (e.g. static IoU vs Mutual Guidance), "
        "after class-aware NMS at IoU 0.5, next to the ground truth. Writes <out>/detections_<id>.png.",
        formatter_class=fmt,
    )
    d.add_argument("checkpoint_a", metavar="CKPT_A", help="first checkpoint or zoo:NAME (e.g. zoo:retinanet_mbv2_iou)")
    d.add_argument("checkpoint_b", metavar="CKPT_B", help="second checkpoint or zoo:NAME (e.g. zoo:retinanet_mbv2_mg)")
    _data_options(d)
    d.add_argument("--out", default="figures/detections", metavar="DIR", help="output folder")
    d.add_argument("--score-thresh", type=float, default=0.3, help="draw detections scoring at least this")
    d.add_argument("--nms-iou", type=float, default=0.5, help="NMS IoU threshold (the paper uses 0.5)")
    d.add_argument(
        "--titles", nargs=2, metavar=("TITLE_A", "TITLE_B"), default=None,
        help="panel titles (default: each checkpoint's training strategy)",
    )  # fmt: skip
    d.set_defaults(func=_detections)

    c = figures.add_parser(
        "curves",
        help="training curves from RUN_DIR/history.csv (+ PR curves from an evaluation json)",
        description="Losses, learning rate, AP/AP50/AP75, positives and ignored anchors per GT, cls/reg "
        "disagreement and misalignment rate per epoch, from RUN_DIR/history.csv -> <out>/training_curves.png. "
        "With --eval-json: per-class AP bars (<out>/per_class_ap.png) and, when the json holds the precision "
        "array (mgdet eval's metrics.json, mgdet.evaluation.save_eval_json), per-class PR curves at IoU 0.5 "
        "and 0.75 (<out>/pr_curves.png).",
        formatter_class=fmt,
    )
    c.add_argument("run_dir", metavar="RUN_DIR", help="training run folder containing history.csv")
    c.add_argument("--eval-json", default=None, metavar="FILE", help="evaluation json of the run (optional)")
    c.add_argument("--out", required=True, metavar="DIR", help="output folder")
    c.set_defaults(func=_curves)
    return p


def _data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, metavar="ROOT", help="dataset root (default: the checkpoint's data.root)")
    add_format(p, "dataset layout (default: the checkpoint's data.format, or auto-detect with --data)", auto=True)
    p.add_argument("--split", default=None, help="split to draw images from (default: the checkpoint's val split)")
    p.add_argument("--images", type=positive_int, default=DEFAULT_IMAGES, metavar="N", help="number of images to draw")
    p.add_argument("--class-map", metavar="SPEC",
                   help="a dataset whose classes differ from the checkpoint's: same-names (match by name, any "
                        "order) or DATASET=CHECKPOINT,... renames; else the lists must be equal")  # fmt: skip
    add_device(p)


# ------------------------------------------------------------------------------------------------ helpers
def _open_data(args: argparse.Namespace, run_config: dict[str, Any], checkpoints: list[str]) -> Any:
    """The dataset named on the command line (falling back to the checkpoint's run config), read so that its
    class i is the checkpoints' class i: the same identity check and ``--class-map`` as ``mgdet eval``."""
    from mgdet.data import open_dataset
    from mgdet.engine.checkpoint import (
        CheckpointError,
        check_class_names,
        load_checkpoint,
        mapped_class_names,
        parse_class_map,
    )

    stored = [list(load_checkpoint(c).get("class_names") or []) for c in checkpoints]
    if len(stored) > 1 and stored[0] and stored[1] and stored[0] != stored[1]:
        raise CheckpointError(f"{checkpoints[0]} and {checkpoints[1]} have other classes: {stored[0]} vs {stored[1]}")
    data_cfg = run_config.get("data", {}) or {}
    root = args.data or data_cfg.get("root")
    if not root:
        raise MgdetError("no dataset: pass --data ROOT (the checkpoint does not name one)")
    fmt = args.format or (data_cfg.get("format") if args.data is None else "auto") or "auto"
    split = args.split or data_cfg.get("val_split") or "val"
    names = data_cfg.get("class_names") or None
    if args.class_map is not None:
        if not stored[0]:
            raise CheckpointError(f"{checkpoints[0]}: --class-map needs the class names the checkpoint stores")
        names = mapped_class_names(stored[0], parse_class_map(args.class_map), checkpoints[0])
    dataset = open_dataset(root, fmt, split, names)
    if args.class_map is None:
        check_class_names(stored[0], dataset.class_names, checkpoints[0])
    return dataset


def _input_size(detector: Any, run_config: dict[str, Any]) -> int:
    size = (run_config.get("data", {}) or {}).get("input_size") or detector.input_size
    return as_hw(size)[0]


def _samples(dataset: Any, count: int, size: int) -> Any:
    """Yield ``(image uint8 [H,W,3], target, tensor [3,S,S], boxes [G,4] S-px, labels [G])`` for the first
    ``count`` images with at least one non-ignored object (ignored / difficult boxes are left out)."""
    import numpy as np
    import torch

    from mgdet.data import EvalTransform

    transform = EvalTransform(size)
    found = 0
    for i in range(len(dataset)):
        if found >= count:
            return
        target = dataset.target(i)
        keep = ~np.asarray(target["ignore"], bool)
        if not keep.any():
            continue
        image, target = dataset[i]
        tensor, boxes, labels = transform(image, target["boxes"][keep], target["labels"][keep])
        found += 1
        yield image, target, tensor, torch.as_tensor(boxes).float(), torch.as_tensor(labels).long()


def _strategy(run_config: dict[str, Any], fallback: str) -> str:
    return str((run_config.get("train", {}) or {}).get("strategy") or fallback)


# ----------------------------------------------------------------------------------------------- handlers
def _amplification(args: argparse.Namespace) -> int:
    from mgdet.viz.amplification import save_amplification

    check_writable(Path(args.out).resolve().parent)
    print(f"wrote {save_amplification(args.out)}")
    return 0


def _assignment(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mgdet.engine.checkpoint import load_detector
    from mgdet.viz.assignment import render_assignment

    check_writable(args.out)  # before the work
    detector, run_config = load_detector(args.checkpoint, map_location=torch_device(args.device))
    dataset = _open_data(args, run_config, [args.checkpoint])
    size = _input_size(detector, run_config)
    strategy = _strategy(run_config, "?")
    rows = []
    samples = _samples(dataset, args.images, size)
    for _image, target, tensor, boxes, labels in tqdm(samples, total=args.images, desc="assignment", unit="img"):
        image_id = target["image_id"]
        res = render_assignment(
            detector, tensor, boxes, labels, Path(args.out) / f"assignment_{image_id}",
            class_names=dataset.class_names, title=f"image {image_id} - checkpoint trained with {strategy}",
        )  # fmt: skip
        n = {k: len(v) for k, v in res["sets"].items()}
        rows.append([str(res["png"]), len(labels), n["red_l2c"], n["green_l2c"], n["red_c2l"], n["yellow_c2l"]])
    print_table(rows, ["figure", "GT", "red (cls)", "green (L2C)", "red (reg)", "yellow (C2L)"])
    return 0


def _detections(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from mgdet.engine.checkpoint import load_detector
    from mgdet.viz.common import save_figure
    from mgdet.viz.detections import plot_detections, run_detector

    check_writable(args.out)  # before the work
    device = torch_device(args.device)
    det_a, cfg_a = load_detector(args.checkpoint_a, map_location=device)
    det_b, cfg_b = load_detector(args.checkpoint_b, map_location=device)
    if det_a.num_classes != det_b.num_classes:
        raise MgdetError(f"the checkpoints have {det_a.num_classes} and {det_b.num_classes} classes")
    titles = args.titles or [_strategy(cfg_a, "A"), _strategy(cfg_b, "B")]
    dataset = _open_data(args, cfg_a, [args.checkpoint_a, args.checkpoint_b])
    sizes = (_input_size(det_a, cfg_a), _input_size(det_b, cfg_b))
    rows = []
    samples = _samples(dataset, args.images, sizes[0])
    for image, target, tensor, _boxes, _labels in tqdm(samples, total=args.images, desc="detections", unit="img"):
        h, w = image.shape[:2]
        dets = []
        for det, size in zip((det_a, det_b), sizes):
            inp = tensor if size == sizes[0] else _network_input(image, size)
            out = run_detector(det, inp, score_thresh=args.score_thresh, nms_iou=args.nms_iou)
            scale = torch.tensor([w / size, h / size, w / size, h / size])
            dets.append({**out, "boxes": out["boxes"] * scale})  # back to original pixels
        gt = {"boxes": target["boxes"], "labels": target["labels"]}
        fig = plot_detections(image, gt, dets, titles, dataset.class_names)
        path = save_figure(fig, Path(args.out) / f"detections_{target['image_id']}.png")
        rows.append([str(path), len(target["labels"]), len(dets[0]["labels"]), len(dets[1]["labels"])])
    print_table(rows, ["figure", "GT", f"{titles[0]} dets", f"{titles[1]} dets"])
    return 0


def _network_input(image: Any, size: int) -> Any:
    """Network input ``[3, S, S]`` of an image for a detector with another input size."""
    import numpy as np

    from mgdet.data import EvalTransform

    tensor, _, _ = EvalTransform(size)(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    return tensor


def _curves(args: argparse.Namespace) -> int:
    from mgdet.evaluation import load_eval_json
    from mgdet.viz.common import save_figure
    from mgdet.viz.curves import (
        plot_per_class_ap,
        plot_pr_curves,
        plot_training_curves,
        read_history,
    )

    run_dir, out = Path(args.run_dir), Path(args.out)
    history_path = run_dir / "history.csv"
    if not history_path.is_file():
        raise InputFileError(f"{history_path}: not found (is RUN_DIR a training run folder?)")
    check_writable(out)
    history = read_history(history_path)
    written = [save_figure(plot_training_curves(history, title=run_dir.name), out / "training_curves.png")]
    if args.eval_json:
        ev = load_eval_json(args.eval_json)
        names = ev.get("class_names") or [c["name"] for c in ev.get("per_class", [])]
        if ev.get("per_class"):
            written.append(save_figure(plot_per_class_ap(ev["per_class"]), out / "per_class_ap.png"))
        if ev.get("precision") is not None:
            fig = plot_pr_curves(ev["precision"], names, ev.get("recall_thresholds"), ev.get("iou_thresholds"))
            written.append(save_figure(fig, out / "pr_curves.png"))
        else:
            print(f"{args.eval_json}: no 'precision' array, PR curves skipped (write it with save_eval_json)")
    print_table([[str(p)] for p in written], ["figure"])
    return 0
