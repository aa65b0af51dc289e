"""``mgdet selfcheck``: every assignment strategy on a tiny random batch."""

from __future__ import annotations

import argparse
import time

from mgdet.catalog import DEFAULT_INPUT_SIZE
from mgdet.cli.common import input_size, print_table


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``selfcheck`` verb."""
    p = sub.add_parser("selfcheck", help="run every assignment strategy on a tiny random batch",
                       description="Quick check that the assignment core runs on this machine.")  # fmt: skip
    p.add_argument("--size", type=input_size, default=DEFAULT_INPUT_SIZE,
                   help=f"input size in pixels ({DEFAULT_INPUT_SIZE})")  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Assign a tiny batch with every strategy and print the label counts."""
    import torch

    from mgdet.anchors import paper_layout
    from mgdet.assign import IGNORED, STRATEGIES, assign, layout_priors
    from mgdet.boxes import decode

    g = torch.Generator().manual_seed(0)
    priors = layout_priors(paper_layout(), args.size)
    anchors = priors.boxes
    xy = torch.rand(2, 4, 2, generator=g) * args.size * 0.6
    gt_boxes = torch.cat([xy, xy + 20 + torch.rand(2, 4, 2, generator=g) * args.size * 0.35], -1)  # [2, 4, 4]
    gt_labels = torch.randint(0, 5, (2, 4), generator=g)
    pred_boxes = decode(torch.randn(2, len(anchors), 4, generator=g) * 0.5, anchors)  # [2, A, 4]
    pred_scores = torch.rand(2, len(anchors), 5, generator=g)  # [2, A, 5]
    rows = []
    for s in STRATEGIES:
        t0 = time.perf_counter()
        a = assign(s, priors, gt_boxes, gt_labels, pred_boxes, pred_scores)
        ms = (time.perf_counter() - t0) * 1000
        rows.append((s, int((a.cls_gt >= 0).sum()), int((a.cls_gt == IGNORED).sum()), int(a.reg_pos.sum()), ms))
    print_table(rows, ["strategy", "cls pos", "ignored", "reg pos", "ms"],
                f"{len(anchors)} anchors at {args.size}px, 2 images x 4 GT")  # fmt: skip
    return 0
