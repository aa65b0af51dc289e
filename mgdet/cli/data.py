"""``mgdet data check ROOT`` and ``mgdet data generate --out DIR``: dataset tools."""

from __future__ import annotations

import argparse
from typing import Any

from mgdet.catalog import BACKBONES, DEFAULT_INPUT_SIZE, DETECTORS
from mgdet.cli.common import _int, add_format, add_no_progress, input_size, positive_int, print_table
from mgdet.limits import MAX_BENCHMARK_IMAGES

#: the most images of one split of a generated benchmark (the two splits together stay within the limit)
MAX_SPLIT = MAX_BENCHMARK_IMAGES // 2


def split_size(text: str) -> int:
    """argparse type of ``data generate --size / --val-size``: 1 to :data:`MAX_SPLIT` images."""
    return _int(text, 1, MAX_SPLIT)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``data`` verb and its actions ``check`` and ``generate``."""
    data = sub.add_parser("data", help="dataset tools: check, generate",
                          description="Dataset tools.").add_subparsers(dest="data_verb", metavar="ACTION")  # fmt: skip
    p = data.add_parser("check", help="list every problem of a dataset at once",
                        description="Validate annotations and image headers; print counts, the class histogram, "
                        "repairs, errors and broken files. Exit code 1 if problems were found.")  # fmt: skip
    p.add_argument("root", help="dataset folder (VOC, YOLO) or COCO json / folder")
    add_format(p, "layout (auto)", auto=True, default="auto")
    p.add_argument("--split", help="split name (VOC: ImageSets/Main/<split>.txt; COCO: instances_<split>.json)")
    p.add_argument(
        "--detector",
        default="retinanet",
        choices=(*DETECTORS, "none"),
        help="also print the share of boxes some anchor of this detector matches with IoU >= 0.5 "
        "(retinanet; 'none' skips it)",
    )
    p.add_argument(
        "--backbone",
        default="mobilenet_v2",
        choices=BACKBONES,
        help="backbone of --detector (mobilenet_v2; RFBNet needs vgg16)",
    )
    p.add_argument(
        "--input-size",
        type=input_size,
        default=DEFAULT_INPUT_SIZE,
        help=f"network input size for the anchor coverage ({DEFAULT_INPUT_SIZE})",
    )
    p.add_argument(
        "--anchor-base",
        type=float,
        default=24.0,
        help="smallest anchor side in pixels (the paper's 24 at 320 px; model.anchor_base)",
    )
    p.add_argument("--headers-only", action="store_true",
                   help="check image headers and structure only, without decoding the pixels (faster; misses "
                        "pixel data that is short or corrupt)")  # fmt: skip
    add_no_progress(p)
    p.set_defaults(func=check)

    p = data.add_parser("generate", help="write the shipped CPU benchmark dataset",
                        description="Generate the deterministic benchmark (COCO json + VOC xml) from photographs "
                        "bundled with scikit-image / scikit-learn / matplotlib.")  # fmt: skip
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0, help="random seed (0)")
    p.add_argument("--size", type=split_size,
                   help=f"number of training images, up to {MAX_SPLIT} (default: the benchmark's)")  # fmt: skip
    p.add_argument("--val-size", type=split_size, help="validation images (default: the benchmark's, or size/5)")
    p.add_argument("--workers", type=positive_int, default=1, help="rendering processes (1)")
    p.add_argument("--crowded", action="store_true",
                   help="100-300 small objects per image (5-15 px at 256 px), as on shelves or aerial images: "
                        "for the assignment's cost on crowded data (the CPU recipe trains on the default)")  # fmt: skip
    p.add_argument("--overwrite", action="store_true", help="replace an existing, different benchmark")
    add_no_progress(p)
    p.set_defaults(func=generate)


def check(args: argparse.Namespace) -> int:
    from mgdet.data import check_dataset

    report = check_dataset(args.root, format=args.format, split=args.split, decode=not args.headers_only,
                           progress=not args.no_progress)  # fmt: skip
    print(report.summary())
    if report.records and args.detector != "none":
        from mgdet.engine.coverage import records_coverage

        cov = records_coverage(report.records, args.detector, args.backbone, args.input_size,
                               anchor_base=args.anchor_base)  # fmt: skip
        print(cov.line() if cov else f"anchor coverage: not applicable ({args.detector} is anchor-free)")
    return 0 if report.ok else 1


def generate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from mgdet.data.benchmark import DEFAULT_NUM_TRAIN, DEFAULT_NUM_VAL, generate_benchmark
    from mgdet.data.benchmark.writer import CROWDED_SCENE

    num_train = args.size if args.size is not None else DEFAULT_NUM_TRAIN
    num_val = args.val_size if args.val_size is not None else (
        DEFAULT_NUM_VAL if args.size is None else max(1, num_train // 5))  # fmt: skip
    bar = tqdm(total=num_train + num_val, desc="generate", unit="img", disable=args.no_progress)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    info = generate_benchmark(args.out, seed=args.seed, num_train=num_train, num_val=num_val,
                              overwrite=args.overwrite, progress=progress, workers=args.workers,
                              scene=CROWDED_SCENE if args.crowded else None)  # fmt: skip
    bar.close()
    print_table(generate_summary(info), ["", "value"])
    return 0


def generate_summary(info: Any) -> list[tuple[str, str]]:
    """Rows ``(name, value)`` of the table ``mgdet data generate`` prints for a ``BenchmarkInfo``."""
    from mgdet.data.benchmark import SPLITS

    rows: list[tuple[str, str]] = [
        ("root", str(info.root)),
        ("status", "already present (skipped)" if info.skipped else f"generated in {info.seconds:.1f} s"),
        ("seed / image size", f"{info.seed} / {info.image_size} px"),
        ("classes", f"{len(info.class_names)}: {', '.join(info.class_names)}"),
    ]
    for split in SPLITS:
        st = info.stats.get(split)
        if not st:
            continue
        rows.append(
            (
                split,
                f"{st['images']} images, {st['objects']} objects, {st['empty_images']} empty, "
                f"{st['overlapping_pairs_iou_0.1_0.5']} pairs IoU 0.1-0.5, "
                f"{st['occluded_objects']} occluded, "
                f"box side {st['box_side_min_frac']:.0%}-{st['box_side_max_frac']:.0%} of image",
            )
        )
    return rows
