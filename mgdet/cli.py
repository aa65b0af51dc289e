"""The ``mgdet`` command line: thin verbs over library functions."""

from __future__ import annotations

import argparse
import sys
import time


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
    print(f"{len(anchors)} anchors at {args.size}px, 2 images x 4 GT")
    print(f"{'strategy':<22} {'cls pos':>8} {'ignored':>8} {'reg pos':>8} {'ms':>7}")
    for s in STRATEGIES:
        t0 = time.perf_counter()
        a = assign(s, anchors, gt_boxes, gt_labels, pred_boxes, pred_scores)
        ms = (time.perf_counter() - t0) * 1000
        n_pos, n_ign, n_reg = int((a.cls_gt >= 0).sum()), int((a.cls_gt == IGNORED).sum()), int(a.reg_pos.sum())
        print(f"{s:<22} {n_pos:>8} {n_ign:>8} {n_reg:>8} {ms:>7.1f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mgdet",
        description="Train and evaluate one-stage detectors with Mutual Guidance label assignment.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    p = sub.add_parser("selfcheck", help="run every assignment strategy on a tiny random batch")
    p.add_argument("--size", type=int, default=320, help="input size in pixels (default: 320)")
    p.set_defaults(func=_selfcheck)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
