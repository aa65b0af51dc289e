"""Class-aware NMS: the block-pair form (``mgdet.nms.batched_nms``) against the ``[N, N]`` matrix form
(``mgdet.nms.nms_dense``, the previous implementation), on the real pre-NMS candidates of a trained detector
(the paper's inference settings: score > 0.005, top 1000 per image) and on random boxes. Checks that both keep
exactly the same boxes, and prints the time per image and the ratio, measured in the same run.

    .venv/bin/python benchmarks/nms_speed.py --checkpoint zoo:retinanet_mbv2_mg --images 200 --threads 2

Needs the benchmark's validation split (``mgdet data generate --out mgdet_data/benchmark``) for the real
candidates; ``--random-only`` skips them.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import torch

from mgdet.nms import batched_nms, nms_dense
from mgdet.postprocess import PAPER_POSTPROCESS
from mgdet.utils.machine import machine_description


def real_candidates(checkpoint: str, data: str | None, images: int) -> list[dict[str, torch.Tensor]]:
    """Pre-NMS candidates of ``checkpoint`` on the first ``images`` validation images."""
    from torch.utils.data import DataLoader

    from mgdet.data import DetectionDataset, EvalTransform, collate_detections
    from mgdet.engine.builders import build_dataset
    from mgdet.engine.checkpoint import load_detector
    from mgdet.engine.config import from_dict

    det, run_cfg = load_detector(checkpoint)
    cfg = from_dict(run_cfg)
    if data:
        cfg.data.root = data
    ds = build_dataset(cfg.data, train=False)
    sub = torch.utils.data.Subset(DetectionDataset(ds, EvalTransform(det.input_size), train=False),
                                  range(min(images, len(ds))))  # fmt: skip
    out = []
    with torch.no_grad():
        for batch in DataLoader(sub, batch_size=32, collate_fn=collate_detections):
            out += det.candidates(det(batch.images), PAPER_POSTPROCESS.score_thresh, PAPER_POSTPROCESS.pre_nms_topk)
    return out


def random_candidates(images: int, n: int = 1000, classes: int = 10, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Random boxes in a 256 px image, clustered around a few objects like a detector's candidates."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(images):
        centres = torch.rand(5, 2, generator=g) * 200 + 28
        pick = torch.randint(0, 5, (n,), generator=g)
        cxy = centres[pick] + torch.randn(n, 2, generator=g) * 8
        wh = torch.rand(n, 2, generator=g) * 60 + 20
        boxes = torch.cat((cxy - wh / 2, cxy + wh / 2), 1)
        out.append({"boxes": boxes, "scores": torch.rand(n, generator=g).sort(descending=True).values,
                    "labels": torch.randint(0, classes, (n,), generator=g)})  # fmt: skip
    return out


def timed(fn: Callable, cands: Sequence[dict[str, torch.Tensor]], repeats: int) -> tuple[float, list[torch.Tensor]]:
    """Median over ``repeats`` of the total time over all images, and the kept indices."""
    times, kept = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        kept = [fn(c["boxes"], c["scores"], c["labels"], PAPER_POSTPROCESS.nms_iou) for c in cands]
        times.append(time.perf_counter() - t)
    return statistics.median(times), kept


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default="zoo:retinanet_mbv2_mg", help="checkpoint or zoo:NAME")
    p.add_argument("--data", help="dataset root (default: the checkpoint's)")
    p.add_argument("--images", type=int, default=200, help="validation images (200)")
    p.add_argument("--repeats", type=int, default=3, help="timed repetitions, median reported (3)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    p.add_argument("--random-only", action="store_true", help="only random boxes (no dataset needed)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sets = [("random, 1000 per image, 10 classes", random_candidates(args.images))]
    if not args.random_only:
        sets.insert(0, (f"{args.checkpoint} candidates", real_candidates(args.checkpoint, args.data, args.images)))
    print(f"{machine_description()}; {args.images} images, "
          f"NMS IoU {PAPER_POSTPROCESS.nms_iou}, median of {args.repeats}\n")  # fmt: skip
    print("| candidates | mean boxes / image | dense [N, N] ms / image | block pairs ms / image | ratio | same |")
    print("|---|---:|---:|---:|---:|---|")
    for label, cands in sets:
        t_dense, k_dense = timed(nms_dense, cands, args.repeats)
        t_new, k_new = timed(batched_nms, cands, args.repeats)
        same = all(torch.equal(a, b) for a, b in zip(k_dense, k_new))
        mean = statistics.fmean(len(c["scores"]) for c in cands)
        print(f"| {label} | {mean:.0f} | {1e3 * t_dense / len(cands):.2f} | {1e3 * t_new / len(cands):.2f} | "
              f"{t_new / t_dense:.2f}x | {'yes' if same else 'NO'} |")  # fmt: skip


if __name__ == "__main__":
    main()
