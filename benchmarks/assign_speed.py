"""Assignment speed: every strategy of mgdet.strategies.STRATEGY_TABLE on the same batch, batched mgdet.assign vs
the per-image / per-GT loop of mgdet.assign.reference (which also checks that both give the same labels).

    .venv/bin/python benchmarks/assign_speed.py [--batch 16 --gts 20 --size 320 --layout paper --repeat 10]

Prints the CPU (or GPU) it ran on, ms per call for each strategy, its ratio to Mutual Guidance's time and the
speed-up over the loop implementation.
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import torch

from mgdet.anchors import paper_layout, retinanet_layout
from mgdet.assign import STRATEGIES, assign, layout_priors
from mgdet.assign.reference import reference_assign


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def timeit(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up
    sync()
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync()
    return (time.perf_counter() - t0) / repeat * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16, help="images per batch")
    ap.add_argument("--gts", type=int, default=20, help="GT boxes per image")
    ap.add_argument("--size", type=int, default=320, help="input size (pixels)")
    ap.add_argument("--classes", type=int, default=20, help="number of classes")
    ap.add_argument("--layout", choices=("paper", "retinanet"), default="paper", help="anchor layout")
    ap.add_argument("--repeat", type=int, default=10, help="timed repetitions per strategy")
    ap.add_argument("--loop-repeat", type=int, default=1, help="timed repetitions of the loop reference (0: skip)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda (the loop reference always runs on the CPU)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    g = torch.Generator().manual_seed(0)
    priors = layout_priors(paper_layout() if args.layout == "paper" else retinanet_layout(), args.size)
    anchors = priors.boxes
    xy = torch.rand(args.batch, args.gts, 2, generator=g) * args.size * 0.7
    gt_boxes = torch.cat([xy, xy + 16 + torch.rand(args.batch, args.gts, 2, generator=g) * args.size * 0.3], -1)
    gt_labels = torch.randint(0, args.classes, (args.batch, args.gts), generator=g)
    pred_boxes = anchors[None] + (torch.rand(args.batch, len(anchors), 4, generator=g) - 0.5) * 8
    pred_scores = torch.rand(args.batch, len(anchors), args.classes, generator=g) * 0.5
    cpu_inputs = (priors, gt_boxes, gt_labels, pred_boxes, pred_scores)
    inputs = (priors.to(dev), gt_boxes.to(dev), gt_labels.to(dev), pred_boxes.to(dev), pred_scores.to(dev))
    where = f"{cpu_model()}, {torch.get_num_threads()} threads"
    if dev.type == "cuda":
        where = f"{torch.cuda.get_device_name(dev)} (host: {where})"

    print(f"batch {args.batch}, {args.gts} GT/image, {len(anchors)} anchors ({args.layout} layout, {args.size} px), "
          f"{args.classes} classes; {where}; torch {torch.__version__}")  # fmt: skip
    rows, times = [], {}
    for s in STRATEGIES:
        batched = timeit(lambda s=s: assign(s, *inputs), args.repeat, sync)
        times[s] = batched
        got = assign(s, *inputs)
        ref = reference_assign(s, *cpu_inputs)
        same = torch.equal(got.cls_gt.cpu(), ref.cls_gt) and torch.equal(got.reg_gt.cpu(), ref.reg_gt)
        loop = float("nan")
        if args.loop_repeat:
            loop = timeit(lambda s=s: reference_assign(s, *cpu_inputs), args.loop_repeat, lambda: None)
        rows.append((s, batched, loop, "yes" if same else "NO"))
    mg = times["mutual_guidance"]
    print()
    print("| strategy | batched ms | / MG | loop ms | speed-up vs loop | same labels |")
    print("|---|---:|---:|---:|---:|---|")
    for s, bt, lt, same in rows:
        print(f"| {s} | {bt:.1f} | {bt / mg:.2f} | {lt:.0f} | {lt / bt:.1f}x | {same} |")
    print(f"\nMG / static time ratio: {mg / times['iou']:.2f}")


if __name__ == "__main__":
    main()
