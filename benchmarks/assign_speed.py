"""Assignment speed: every strategy of mgdet.strategies.STRATEGY_TABLE on the same batch, batched mgdet.assign vs
the per-image / per-GT loop of mgdet.assign.reference (which also checks that both give the same labels).

    .venv/bin/python benchmarks/assign_speed.py [--batch 16 --gts 20 --size 320 --layout paper --repeat 10]

Prints the CPU (or GPU) it ran on, ms per call for each strategy, its ratio to Mutual Guidance's time and the
speed-up over the loop implementation.

    .venv/bin/python benchmarks/assign_speed.py --crowded [--repeat 3]

The crowded table (docs/assign_speed.md): every rule at B 16 G 20, B 4 G 500 and B 2 G 2,000 (small objects) on
the 8,160- (256 px) and 12,750-anchor (320 px) layouts, one thread, each measurement in its own process: the
median time of ``--repeat`` calls after a first call, and the extra peak memory of that first call (peak RSS
after it minus before it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch

from mgdet.anchors import paper_layout, retinanet_layout
from mgdet.assign import STRATEGIES, assign, layout_priors, sparse
from mgdet.assign.reference import reference_assign
from mgdet.strategies import AssignParams

#: Variants of the paper's rule timed after the strategy table (issue 25; ``mg_reg: cls`` skips the C2L half).
VARIANTS = {
    "mg_soft": {"mg_soft_target": True},
    "mg_aligned": {"mg_metric": "aligned"},
    "mg_aligned_shared": {"mg_metric": "aligned", "mg_reg": "cls"},
}


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


#: the crowded table's batches: (label, images, GT per image, object sizes)
CASES = (("B 16, G 20", 16, 20, "normal"), ("B 4, G 500", 4, 500, "small"), ("B 2, G 2,000", 2, 2000, "small"))
#: anchors -> (input size, smallest anchor): the paper's layout at 256 px (the CPU recipe) and at 320 px
LAYOUTS = {8160: (256, 19.2), 12750: (320, 24.0)}


def crowded_inputs(batch: int, gts: int, anchors: int, objects: str, classes: int = 20):
    """Seeded random batch: GT boxes (small: 4-16 px, normal: 16 px up to 30 % of the image), labels,
    regressed boxes = anchors +- 4 px, scores uniform in [0, 0.5)."""
    size, base = LAYOUTS[anchors]
    g = torch.Generator().manual_seed(0)
    priors = layout_priors(paper_layout(base_size=base), size)
    assert priors.num == anchors
    if objects == "small":
        xy = torch.rand(batch, gts, 2, generator=g) * (size - 16)
        gt_boxes = torch.cat([xy, xy + 4 + torch.rand(batch, gts, 2, generator=g) * 12], -1)
    else:
        xy = torch.rand(batch, gts, 2, generator=g) * size * 0.7
        gt_boxes = torch.cat([xy, xy + 16 + torch.rand(batch, gts, 2, generator=g) * size * 0.3], -1)
    gt_boxes = gt_boxes.clamp(max=size)
    gt_labels = torch.randint(0, classes, (batch, gts), generator=g)
    pred_boxes = priors.boxes[None] + (torch.rand(batch, anchors, 4, generator=g) - 0.5) * 8
    pred_scores = torch.rand(batch, anchors, classes, generator=g) * 0.5
    return priors, gt_boxes, gt_labels, pred_boxes, pred_scores


#: suffix of a rule measured on the dense GT chunks (``mgdet.assign.sparse.WINDOWS = False``): the path every
#: call took before the anchor-grid windows
DENSE = "@dense"
#: the rules that take the windows on crowded batches
WINDOW_RULES = ("iou", "localize_to_classify", "classify_to_localize", "mutual_guidance", "mutual_guidance_dynamic")


def measure_one(rule: str, batch: int, gts: int, anchors: int, objects: str, repeat: int) -> dict:
    """One measurement, in this process: extra peak memory of the first call, median time of ``repeat`` more."""
    torch.set_num_threads(1)
    if rule.endswith(DENSE):
        sparse.WINDOWS = False
        rule = rule[: -len(DENSE)]
    priors, gt_boxes, gt_labels, pred_boxes, pred_scores = crowded_inputs(batch, gts, anchors, objects)

    def call() -> object:
        return assign(rule, priors, gt_boxes, gt_labels, pred_boxes, pred_scores)

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    call()
    extra = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # MiB (ru_maxrss: KiB)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append((time.perf_counter() - t0) * 1000)
    return {"rule": rule, "ms": statistics.median(times), "extra_mib": extra}


def crowded_table(repeat: int) -> None:
    """Every (case, layout, rule) in its own process; the table and the windows-vs-dense ratios."""
    rules = (*STRATEGIES, *(r + DENSE for r in WINDOW_RULES))
    print(f"{cpu_model()}, 1 thread per measurement, torch {torch.__version__}; each cell: median of {repeat} "
          "calls after a first one, and (+ MiB) the extra peak memory of that first call, own process")  # fmt: skip
    results: dict[tuple[str, int], dict[str, dict]] = {}
    for label, batch, gts, objects in CASES:
        for anchors in LAYOUTS:
            row = {}
            for rule in rules:
                cmd = [sys.executable, __file__, "--one", rule, "--batch", str(batch), "--gts", str(gts),
                       "--anchors", str(anchors), "--objects", objects, "--repeat", str(repeat)]  # fmt: skip
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                line = proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else ""
                row[rule] = json.loads(line) if line.startswith("{") else {"rule": rule, "failed": proc.stderr[-300:]}
            results[(label, anchors)] = row
            cells = " | ".join(_cell(row[r]) for r in rules)
            print(f"| {label} | {anchors:,} | {cells} |", flush=True)
    shown = STRATEGIES
    print()
    print("| batch | anchors | " + " | ".join(shown) + " |")
    print("|---|---:|" + "---:|" * len(shown))
    for (label, anchors), row in results.items():
        print(f"| {label} | {anchors:,} | " + " | ".join(_cell(row[r]) for r in shown) + " |")
    print("\nanchor-grid windows against the dense GT chunks (mgdet.assign.sparse.WINDOWS = False), same run: "
          "dense time / windows time")  # fmt: skip
    print("| batch | anchors | " + " | ".join(WINDOW_RULES) + " |")
    print("|---|---:|" + "---:|" * len(WINDOW_RULES))
    for (label, anchors), row in results.items():
        cells = [f"{row[r + DENSE]['ms']:,.0f} / {row[r]['ms']:,.0f} ms = {row[r + DENSE]['ms'] / row[r]['ms']:.1f}x"
                 if "ms" in row[r] and "ms" in row[r + DENSE] else "-" for r in WINDOW_RULES]  # fmt: skip
        print(f"| {label} | {anchors:,} | " + " | ".join(cells) + " |")


def _cell(r: dict) -> str:
    if "ms" in r:
        return f"{r['ms']:,.0f} ms (+{r['extra_mib']:.0f} MiB)"
    return "failed"


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
    ap.add_argument("--crowded", action="store_true", help="the crowded table (see the module docstring)")
    ap.add_argument("--one", metavar="RULE", help=argparse.SUPPRESS)
    ap.add_argument("--anchors", type=int, default=8160, help=argparse.SUPPRESS)
    ap.add_argument("--objects", default="small", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.batch, args.gts, args.anchors, args.objects, args.repeat)))
        return
    if args.crowded:
        crowded_table(args.repeat if args.repeat != 10 else 3)
        return
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
        loop = None  # not timed with --loop-repeat 0
        if args.loop_repeat:
            loop = timeit(lambda s=s: reference_assign(s, *cpu_inputs), args.loop_repeat, lambda: None)
        rows.append((s, batched, loop, "yes" if same else "NO"))
    mg = times["mutual_guidance"]
    print()
    print("| strategy | batched ms | / MG | loop ms | speed-up vs loop | same labels |")
    print("|---|---:|---:|---:|---:|---|")
    for s, bt, lt, same in rows:
        loop_cells = "- | -" if lt is None else f"{lt:.0f} | {lt / bt:.1f}x"
        print(f"| {s} | {bt:.1f} | {bt / mg:.2f} | {loop_cells} | {same} |")
    print(f"\nMG / static time ratio: {mg / times['iou']:.2f}")
    print("\n| mutual_guidance variant (AssignParams) | batched ms | / MG |\n|---|---:|---:|")
    for name, knobs in VARIANTS.items():
        bt = timeit(lambda k=knobs: assign("mutual_guidance", *inputs, AssignParams(**k)), args.repeat, sync)
        print(f"| {name}: {', '.join(f'{k}={v}' for k, v in knobs.items())} | {bt:.1f} | {bt / mg:.2f} |")


if __name__ == "__main__":
    main()
