"""How much Localize-to-Classify and Classify-to-Localize change static IoU matching for trained checkpoints.

Usage: ``python scripts/assignment_overlap.py RUN/last.pth [RUN2/last.pth ...] [--images 100] [--split train]``.

For the first ``--images`` images (with objects) of the checkpoint's own dataset, resized as at evaluation,
the detector's predictions are assigned with static IoU, L2C and C2L (``mgdet.viz.assignment``) and pooled:
the share of static positives that L2C keeps as classification positives and C2L keeps as regression samples,
the mean IoU of a positive's regressed box with its GT (static vs L2C positives) and the mean class score of
positives (static vs C2L samples). A C2L keep rate near 100 % means the amplification hardly reorders anchors.
"""

from __future__ import annotations

import argparse

import torch

from mgdet.engine.checkpoint import load_detector
from mgdet.utils.table import format_table
from mgdet.viz.assignment import detector_assignments, overlap_summary, overlap_sums, run_images


def checkpoint_overlap(path: str, images: int, split: str, progress: bool = True) -> dict[str, float]:
    """:func:`overlap_summary` of one checkpoint over the first ``images`` non-empty images of ``split``."""
    detector, cfg_dict = load_detector(path)
    sums = []
    for x, b, lab, _ in run_images(cfg_dict, images, split, desc=path, progress=progress):
        a, _, pred_boxes, pred_scores = detector_assignments(detector, x, b, lab)
        sums.append(overlap_sums(a, b, lab, pred_boxes, pred_scores))
    return overlap_summary(sums)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="mgdet checkpoints (last.pth / best.pth)")
    p.add_argument("--images", type=int, default=100, help="images with objects to pool (100)")
    p.add_argument("--split", choices=("train", "val"), default="train", help="dataset split (train)")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = []
    for ckpt in args.checkpoints:
        s = checkpoint_overlap(ckpt, args.images, args.split)
        rows.append([ckpt, int(s["static_positives"]), f"{100 * s['l2c_kept']:.1f}", f"{100 * s['c2l_kept']:.1f}",
                     f"{s['iou_reg_static']:.3f} / {s['iou_reg_l2c']:.3f}",
                     f"{s['score_static']:.3f} / {s['score_c2l']:.3f}"])  # fmt: skip
    print(format_table(rows, ["checkpoint", "static pos", "kept by L2C %", "kept by C2L %",
                              "IoU_reg pos: static / L2C", "score pos: static / C2L"], style="markdown"))  # fmt: skip


if __name__ == "__main__":
    main()
