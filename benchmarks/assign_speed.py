"""Assignment speed: batched mgdet.assign vs a straightforward per-image / per-GT loop, same run, same data.

    .venv/bin/python benchmarks/assign_speed.py [--batch 16 --gts 20 --size 320 --layout paper --repeat 10]

Prints ms per call for each strategy, the MG / static ratio and the speed-up over the loop implementation.
"""

from __future__ import annotations

import argparse
import time

import torch

from mgdet.anchors import generate_anchors, paper_layout, retinanet_layout
from mgdet.assign import IGNORED, NEGATIVE, STRATEGIES, assign
from mgdet.boxes import box_iou


def loop_assign(strategy, anchors, gt_boxes, gt_labels, pred_boxes, pred_scores, pos=0.5, neg=0.4, sigma=2.0):
    """Straightforward implementation in the style of the original SSD matcher: loop over images and GTs."""
    num_b, num_a = gt_boxes.shape[0], anchors.shape[0]
    cls_out = torch.full((num_b, num_a), NEGATIVE, dtype=torch.long)
    reg_out = torch.full((num_b, num_a), NEGATIVE, dtype=torch.long)

    def reserved(m):
        m = m.clone()
        for j in range(m.shape[0]):
            m[j, m[j].argmax()] = 1.0
        best_val, owner = m.max(0)
        out = torch.zeros_like(m)
        for j in range(m.shape[0]):
            sel = owner == j
            out[j, sel] = m[j, sel]
        return out

    for b in range(num_b):
        keep = gt_labels[b] >= 0
        gts, labels = gt_boxes[b][keep], gt_labels[b][keep]
        if len(gts) == 0:
            continue
        iou = box_iou(gts, anchors)
        st = reserved(iou)
        val, owner = st.max(0)
        cls = torch.where(val >= pos, owner, torch.where(val >= neg, IGNORED, NEGATIVE))
        reg = torch.where(cls >= 0, cls, NEGATIVE)
        if strategy != "iou":
            n_pos = (st >= pos).sum(1)
            n_ign = ((st >= neg) & (st < pos)).sum(1)
        if strategy in ("localize_to_classify", "mutual_guidance"):
            rr = reserved(box_iou(gts, pred_boxes[b]))
            cls = torch.full((num_a,), NEGATIVE, dtype=torch.long)
            for j in range(len(gts)):
                v, i = rr[j].sort(descending=True)
                i = i[v > 0]
                cls[i[n_pos[j] : n_pos[j] + n_ign[j]]] = IGNORED
                cls[i[: n_pos[j]]] = j
        if strategy in ("classify_to_localize", "mutual_guidance"):
            amp = iou ** ((sigma - pred_scores[b][:, labels].T) / sigma)
            ra = reserved(amp)
            reg = torch.full((num_a,), NEGATIVE, dtype=torch.long)
            for j in range(len(gts)):
                v, i = ra[j].sort(descending=True)
                reg[i[v > 0][: n_pos[j]]] = j
        # map back from kept-GT index to padded index
        index = keep.nonzero().squeeze(1)
        cls_out[b] = torch.where(cls >= 0, index[cls.clamp(min=0)], cls)
        reg_out[b] = torch.where(reg >= 0, index[reg.clamp(min=0)], reg)
    return cls_out, reg_out


def timeit(fn, repeat: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=16, help="images per batch")
    ap.add_argument("--gts", type=int, default=20, help="GT boxes per image")
    ap.add_argument("--size", type=int, default=320, help="input size (pixels)")
    ap.add_argument("--classes", type=int, default=20, help="number of classes")
    ap.add_argument("--layout", choices=("paper", "retinanet"), default="paper", help="anchor layout")
    ap.add_argument("--repeat", type=int, default=10, help="timed repetitions per strategy")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    g = torch.Generator().manual_seed(0)
    layout = paper_layout() if args.layout == "paper" else retinanet_layout()
    anchors = generate_anchors(layout, args.size)
    xy = torch.rand(args.batch, args.gts, 2, generator=g) * args.size * 0.7
    gt_boxes = torch.cat([xy, xy + 16 + torch.rand(args.batch, args.gts, 2, generator=g) * args.size * 0.3], -1)
    gt_labels = torch.randint(0, args.classes, (args.batch, args.gts), generator=g)
    pred_boxes = anchors[None] + (torch.rand(args.batch, len(anchors), 4, generator=g) - 0.5) * 8
    pred_scores = torch.rand(args.batch, len(anchors), args.classes, generator=g) * 0.5

    print(
        f"batch {args.batch}, {args.gts} GT/image, {len(anchors)} anchors ({args.layout} layout, {args.size} px), "
        f"{torch.get_num_threads()} threads"
    )
    rows, times = [], {}
    for s in STRATEGIES:
        batched = timeit(lambda s=s: assign(s, anchors, gt_boxes, gt_labels, pred_boxes, pred_scores), args.repeat)
        loop = timeit(
            lambda s=s: loop_assign(s, anchors, gt_boxes, gt_labels, pred_boxes, pred_scores), max(1, args.repeat // 3)
        )
        ref = loop_assign(s, anchors, gt_boxes, gt_labels, pred_boxes, pred_scores)
        got = assign(s, anchors, gt_boxes, gt_labels, pred_boxes, pred_scores)
        same = torch.equal(got.cls_gt, ref[0]) and torch.equal(got.reg_gt, ref[1])
        times[s] = batched
        rows.append((s, batched, loop, loop / batched, "yes" if same else "NO"))
    print()
    print("| strategy | batched ms | loop ms | speed-up vs loop | same labels |")
    print("|---|---:|---:|---:|---|")
    for s, bt, lt, r, same in rows:
        print(f"| {s} | {bt:.1f} | {lt:.1f} | {r:.1f}x | {same} |")
    print(f"\nMG / static time ratio: {times['mutual_guidance'] / times['iou']:.2f}")


if __name__ == "__main__":
    main()
