"""The statistics of history.csv (mgdet.stats: assignment statistics, positive scores) and anchor coverage
(mgdet.engine.coverage) against hand values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mgdet.anchors import best_anchor_iou
from mgdet.assign import IGNORED, NEGATIVE, Assignment
from mgdet.engine.coverage import anchor_coverage_of, detector_anchors, input_boxes
from mgdet.stats import (
    STAT_KEYS,
    assignment_stats,
    epoch_means,
    histogram_mean,
    histogram_median,
    positive_class_scores,
    score_histogram,
)


def test_positive_class_scores_take_the_gt_class_at_positives_only():
    cls_gt = torch.tensor([[1, -1, 0, -2], [-1, 0, -1, -1]])  # [B=2, A=4]
    gt_labels = torch.tensor([[2, 0], [1, -1]])  # [B, G]
    scores = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3) / 100  # [B, A, C]
    got = positive_class_scores(cls_gt, gt_labels, scores)
    # image 0: anchor 0 -> GT 1 (class 0) = 0.00, anchor 2 -> GT 0 (class 2) = 0.08; image 1: anchor 1 -> class 1
    assert got.tolist() == pytest.approx([0.00, 0.08, 0.16])
    no_gt = torch.zeros(1, 0, dtype=torch.long)
    assert positive_class_scores(torch.full((1, 3), -1), no_gt, scores[:1, :3]).numel() == 0


def test_histogram_median_and_mean_within_one_bin():
    values = torch.rand(5001, generator=torch.Generator().manual_seed(0)) ** 2
    counts = score_histogram(values)
    assert sum(counts) == 5001
    assert histogram_median(counts) == pytest.approx(float(values.median()), abs=1e-3)
    assert histogram_mean(counts) == pytest.approx(float(values.mean()), abs=1e-3)
    # counts of two halves add up to the histogram of the whole (how an epoch accumulates steps)
    both = [a + b for a, b in zip(score_histogram(values[:2000]), score_histogram(values[2000:]))]
    assert both == counts
    assert histogram_median([0] * 10) is None and histogram_mean([0] * 10) is None
    assert histogram_median([0, 2, 0, 0]) == pytest.approx(0.375)  # half of 2 values in bin [0.25, 0.5)


def test_best_anchor_iou_by_hand():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 20.0, 20.0]])
    boxes = torch.tensor([[0.0, 0.0, 10.0, 5.0], [0.0, 0.0, 20.0, 10.0], [50.0, 50.0, 60.0, 60.0]])
    # box 0: 50/100 with anchor 0; box 1: 200/400 with anchor 1 (100/200 with anchor 0); box 2: nothing
    assert best_anchor_iou(boxes, anchors, chunk=2).tolist() == pytest.approx([0.5, 0.5, 0.0])


class _Rec:
    def __init__(self, boxes, ignore, width, height):
        self.boxes, self.ignore, self.width, self.height = np.array(boxes, np.float32), np.array(ignore), width, height


def test_coverage_scales_boxes_like_the_loader_and_counts_shares():
    recs = [_Rec([[0, 0, 128, 64], [10, 10, 20, 20]], [False, True], 256, 128)]
    boxes = input_boxes(recs, 320)  # ignored box dropped, x * 1.25, y * 2.5
    assert boxes.tolist() == [[0.0, 0.0, 160.0, 160.0]]
    anchors = torch.tensor([[0.0, 0.0, 160.0, 160.0]])
    cov = anchor_coverage_of(torch.cat([boxes, torch.tensor([[0.0, 0.0, 160.0, 60.0]])]), anchors, "x", 320)
    assert (cov.at_05, cov.at_04, cov.num_boxes) == (0.5, 0.5, 2)  # 60/160 = 0.375 is below both
    assert "50.0 % of 2 boxes" in cov.line()


def test_paper_layout_covers_paper_sized_boxes_at_320_but_not_at_160():
    # boxes of 24..160 px at 320 (the smallest anchor is 24 px); the same boxes halved at 160
    sizes = torch.linspace(24, 160, 30)
    xy = torch.linspace(0, 150, 7)
    boxes = torch.stack([torch.stack([x, y, x + s, y + s * 0.8]) for s in sizes for x in xy for y in xy])
    boxes = boxes[(boxes[:, 2] <= 320) & (boxes[:, 3] <= 320)]
    at320 = anchor_coverage_of(boxes, detector_anchors("retinanet", "mobilenet_v2", 320), "r", 320)
    at160 = anchor_coverage_of(boxes / 2, detector_anchors("retinanet", "mobilenet_v2", 160), "r", 160)
    assert at320.at_05 == 1.0 and at160.at_05 < 0.9
    assert detector_anchors("fcos", "mobilenet_v2", 320) is None


def test_anchor_base_scales_the_paper_layout():
    a320 = detector_anchors("retinanet", "mobilenet_v2", 320)
    a256 = detector_anchors("retinanet", "mobilenet_v2", 256, anchor_base=19.2)
    side = lambda a: (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])  # noqa: E731
    assert float(side(a320).min().sqrt()) == pytest.approx(24.0, rel=1e-4)
    assert float(side(a256).min().sqrt()) == pytest.approx(19.2, rel=1e-4)
    assert a256.shape[0] == 6 * (32**2 + 16**2 + 8**2 + 4**2)


def test_assignment_stats_are_per_step_ratios_averaged_over_steps() -> None:
    gt_labels = torch.tensor([[0, 1, -1], [2, -1, -1]])  # 3 valid GT
    a = Assignment(
        cls_gt=torch.tensor([[0, 1, IGNORED, NEGATIVE, 0], [0, IGNORED, IGNORED, NEGATIVE, NEGATIVE]]),
        reg_gt=torch.tensor([[0, NEGATIVE, NEGATIVE, 1, 0], [0, NEGATIVE, NEGATIVE, NEGATIVE, NEGATIVE]]),
    )
    stats = assignment_stats(a, gt_labels)
    assert tuple(stats) == STAT_KEYS
    assert stats["pos_cls_per_gt"] == pytest.approx(4 / 3)
    assert stats["pos_reg_per_gt"] == pytest.approx(4 / 3)
    assert stats["ign_per_gt"] == pytest.approx(1.0)
    assert stats["disagree"] == pytest.approx(0.2)  # anchors 1 and 3 of image 0, out of 10
    assert stats["disagree"] == float(a.disagreement())

    # an epoch of two one-image steps: the mean of the step ratios (what history.csv has always logged),
    # not the ratio of the pooled counts (which the whole batch above gives)
    steps = [
        assignment_stats(Assignment(a.cls_gt[b : b + 1], a.reg_gt[b : b + 1]), gt_labels[b : b + 1]) for b in (0, 1)
    ]
    assert steps[0]["pos_cls_per_gt"] == 1.5 and steps[1]["pos_cls_per_gt"] == 1.0
    sums = {k: steps[0][k] + steps[1][k] for k in STAT_KEYS}
    epoch = epoch_means(sums, 2)
    assert epoch["pos_cls_per_gt"] == pytest.approx(1.25) != pytest.approx(stats["pos_cls_per_gt"])
    assert epoch["ign_per_gt"] == pytest.approx((0.5 + 2.0) / 2)
    assert epoch_means(sums, 0) == sums  # no finite step: divided by 1

    none = assignment_stats(
        Assignment(torch.full((1, 4), NEGATIVE), torch.full((1, 4), NEGATIVE)), torch.full((1, 2), -1)
    )
    assert none == {k: 0.0 for k in STAT_KEYS}
