"""Positives per GT by object size, for several assignment rules on the same trained detector's predictions.

Usage: ``python scripts/positives_by_size.py CHECKPOINT [CHECKPOINT ...] [--images 200] [--split train]
[--rules iou,mg,mg_aligned,tal,mgd] [--out PATH]``

For the first ``--images`` images (with objects) of the checkpoint's dataset, resized as at evaluation, the
detector's predictions are assigned by every rule (:meth:`~mgdet.models.detector.Detector.assign`, the assignment
training uses). Per rule and COCO size bin of the GT (area in the original image: small < 32², medium < 96²,
large), pooled over the images: classification positives per GT, regression samples per GT, the share of GTs
with at most one positive, and, over the positives, the mean IoU of their regressed boxes with their GT, the mean
score of the GT's class and the mean pyramid level (0 = finest). It shows how many and which anchors each rule
trains per object size (issue 25: MG's APl below task-aligned's). ``--out PATH`` writes ``PATH.md`` and
``PATH.json`` (never over an earlier file).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mgdet.boxes import box_iou
from mgdet.engine.checkpoint import load_detector
from mgdet.errors import MgdetError
from mgdet.strategies import AssignParams
from mgdet.utils.table import format_table
from mgdet.viz.assignment import run_images

#: rule key -> (strategy, variant knobs); the other knobs are the checkpoint's (its sigma, top-k...)
RULES = {
    "iou": ("iou", {}),
    "mg": ("mutual_guidance", {}),
    "mg_aligned": ("mutual_guidance", {"mg_metric": "aligned"}),
    "mg_aligned_shared": ("mutual_guidance", {"mg_metric": "aligned", "mg_reg": "cls"}),
    "tal": ("task_aligned", {}),
    "tal_c2l": ("task_aligned", {"tal_reg": "c2l"}),
    "mgd": ("mutual_guidance_dynamic", {}),
    "atss": ("atss", {}),
}
#: the variant knobs, reset to their defaults before a rule's own (a checkpoint trained with a variant stores them)
VARIANT_KNOBS = ("mg_soft_target", "mg_metric", "mg_lambda", "mg_ramp", "tal_reg", "mg_reg")
BINS = ("small", "medium", "large")
SUMS = ("gts", "cls_pos", "reg_pos", "at_most_one", "iou_sum", "score_sum", "level_sum")


def size_bins(boxes: np.ndarray) -> np.ndarray:
    """[G] COCO size bin (0 small, 1 medium, 2 large) of ``boxes [G, 4]`` xyxy by area."""
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return np.digitize(area, [32.0**2, 96.0**2])


def image_sums(
    cls_gt: Tensor,
    reg_gt: Tensor,
    bins: np.ndarray,
    gt_boxes: Tensor,
    pred_boxes: Tensor,
    gt_scores: Tensor,
    levels: Tensor,
) -> dict[str, np.ndarray]:
    """Per size bin sums for one image: ``cls_gt``/``reg_gt [A]`` GT index or < 0, ``bins [G]``, ``gt_boxes [G, 4]``,
    ``pred_boxes [A, 4]``, ``gt_scores [A, G]`` (score of each GT's class at each anchor), ``levels [A]`` (pyramid
    level of each anchor, 0 = finest)."""
    g = len(bins)
    pos = cls_gt >= 0
    cls_count = torch.bincount(cls_gt[pos], minlength=g).numpy()  # [G]
    reg_count = torch.bincount(reg_gt[reg_gt >= 0], minlength=g).numpy()  # [G]
    idx = cls_gt[pos]
    iou = box_iou(pred_boxes[pos], gt_boxes).gather(1, idx[:, None])[:, 0]  # [P] IoU with own GT
    score = gt_scores[pos].gather(1, idx[:, None])[:, 0]  # [P]
    iou_per_gt = torch.zeros(g, dtype=torch.float64).index_add_(0, idx, iou.double()).numpy()
    score_per_gt = torch.zeros(g, dtype=torch.float64).index_add_(0, idx, score.double()).numpy()
    level_per_gt = torch.zeros(g, dtype=torch.float64).index_add_(0, idx, levels[pos].double()).numpy()
    per_gt = {"gts": np.ones(g), "cls_pos": cls_count, "reg_pos": reg_count, "at_most_one": cls_count <= 1,
              "iou_sum": iou_per_gt, "score_sum": score_per_gt, "level_sum": level_per_gt}  # fmt: skip
    return {k: np.bincount(bins, weights=v.astype(np.float64), minlength=3) for k, v in per_gt.items()}


@torch.no_grad()
def checkpoint_sums(path: str, rules: list[str], images: int, split: str) -> dict[str, np.ndarray]:
    """Pooled :func:`image_sums` per rule -> ``{rule: [len(SUMS), 3]}`` over ``images`` images of ``split``."""
    detector, cfg_dict = load_detector(path)
    detector.eval()
    totals = {r: np.zeros((len(SUMS), 3)) for r in rules}
    levels = detector.priors().levels.cpu()  # [A]
    base = replace(detector.assign_params, **{k: getattr(AssignParams(), k) for k in VARIANT_KNOBS})
    for x, gt, lab, original in run_images(cfg_dict, images, split, desc=str(path)):
        out = detector(x[None].float())
        pred_boxes = detector.decode_boxes(out["box_deltas"].float())[0]  # [A, 4]
        gt_scores = out["cls_logits"].float().sigmoid()[0][:, lab]  # [A, G]
        for r in rules:
            strategy, knobs = RULES[r]
            a = detector.assign(out, gt[None], lab[None], strategy, replace(base, **knobs))
            s = image_sums(a.cls_gt[0], a.reg_gt[0], size_bins(original), gt, pred_boxes, gt_scores, levels)
            totals[r] += np.stack([s[k] for k in SUMS])
    return totals


def summary_rows(name: str, totals: dict[str, np.ndarray]) -> list[dict]:
    """One row per rule and size bin: means per GT (positives) and per positive (IoU, score)."""
    rows = []
    for rule, t in totals.items():
        s = dict(zip(SUMS, t))
        for b, bin_name in enumerate(BINS):
            n, pos = s["gts"][b], s["cls_pos"][b]
            rows.append({"checkpoint": name, "rule": rule, "size": bin_name, "gts": int(n),
                         "cls_pos_per_gt": s["cls_pos"][b] / max(n, 1), "reg_per_gt": s["reg_pos"][b] / max(n, 1),
                         "at_most_one_pct": 100 * s["at_most_one"][b] / max(n, 1),
                         "iou_pos": s["iou_sum"][b] / max(pos, 1),
                         "score_pos": s["score_sum"][b] / max(pos, 1),
                         "level_pos": s["level_sum"][b] / max(pos, 1)})  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoints", nargs="+", help="mgdet checkpoints (RUN/last.pth, zoo:NAME)")
    p.add_argument("--images", type=int, default=200, help="images with objects to pool (200)")
    p.add_argument("--split", choices=("train", "val"), default="train", help="dataset split (train)")
    p.add_argument("--rules", default="iou,mg,mg_aligned,tal,mgd", help=f"comma-separated, of {', '.join(RULES)}")
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json (an existing file is never replaced)")
    args = p.parse_args()
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    unknown = [r for r in rules if r not in RULES]
    if unknown:
        p.error(f"--rules: unknown {unknown}; choose from {', '.join(RULES)}")
    if args.out:
        for path in (args.out.with_suffix(".md"), args.out.with_suffix(".json")):
            if path.exists():
                p.error(f"--out: {path} exists; choose another path")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    try:
        rows = [
            row for c in args.checkpoints for row in summary_rows(c, checkpoint_sums(c, rules, args.images, args.split))
        ]
    except MgdetError as e:  # a missing or foreign checkpoint, a dataset that is not there: the message names it
        raise SystemExit(f"positives_by_size: {e}") from None
    table = format_table([[r["checkpoint"], r["rule"], r["size"], r["gts"], f"{r['cls_pos_per_gt']:.2f}",
                           f"{r['reg_per_gt']:.2f}", f"{r['at_most_one_pct']:.1f}", f"{r['iou_pos']:.3f}",
                           f"{r['score_pos']:.3f}", f"{r['level_pos']:.2f}"] for r in rows],
                         ["checkpoint", "rule", "size", "GTs", "cls pos / GT", "reg / GT", "GTs ≤ 1 pos %",
                          "IoU_reg of pos", "score of pos", "level of pos"], style="markdown")  # fmt: skip
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        cmd = "python scripts/positives_by_size.py " + " ".join(args.checkpoints)
        args.out.with_suffix(".md").write_text(
            f"Made by `{cmd} --images {args.images} --split {args.split} --rules {','.join(rules)}`\n\n{table}\n",
            encoding="utf-8",
        )
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
