"""Variants of the paper's rule (issue 25, item 2): L2C ranked by TOOD's aligned metric, and the static-to-mutual
interpolation (mg_lambda) with its ramp (mg_ramp). Batched = the per-image reference loop; lambda = 0 gives the
static labels; the defaults give the paper's rule. The hybrid tal_reg: c2l = TOOD's labels + the paper's C2L."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from mgdet.anchors import paper_layout
from mgdet.assign import assign, core, layout_priors, point_priors, sparse
from mgdet.assign.fcos import level_ranges
from mgdet.assign.reference import reference_paper
from mgdet.models.fcos import generate_points
from mgdet.strategies import AssignParams


def _batch(seed: int, g: int = 12, size: int = 128):
    priors = layout_priors(paper_layout(base_size=9.6), size)
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(2, g, 2, generator=gen) * (size - 40)
    gt = torch.cat([xy, xy + 6 + torch.rand(2, g, 2, generator=gen) * 34], -1)
    labels = torch.randint(0, 5, (2, g), generator=gen)
    labels[1, -2:] = -1  # padding
    pred = priors.boxes[None] + (torch.rand(2, priors.num, 4, generator=gen) - 0.5) * 10
    scores = torch.rand(2, priors.num, 5, generator=gen)
    return priors, gt, labels, pred, scores


VARIANTS = [
    AssignParams(mg_metric="aligned"),
    AssignParams(mg_lambda=0.3),
    AssignParams(mg_lambda=0.7, mg_metric="aligned"),
    AssignParams(mg_metric="aligned", tal_alpha=0.5, tal_beta=2.0),
]


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("params", VARIANTS, ids=lambda p: str(p.changed()))
@pytest.mark.parametrize("strategy", ["localize_to_classify", "classify_to_localize", "mutual_guidance"])
def test_variants_equal_the_reference_loop(strategy, params, seed):
    priors, gt, labels, pred, scores = _batch(seed)
    got = assign(strategy, priors, gt, labels, pred, scores, params)
    exp = reference_paper(strategy, priors.boxes, gt, labels, pred, scores, metric=params.mg_metric,
                          alpha=params.tal_alpha, beta=params.tal_beta, lam=params.mg_lambda)  # fmt: skip
    assert torch.equal(got.cls_gt, exp.cls_gt) and torch.equal(got.reg_gt, exp.reg_gt)


def test_the_variants_change_the_labels():
    priors, gt, labels, pred, scores = _batch(5)
    paper = assign("mutual_guidance", priors, gt, labels, pred, scores)
    aligned = assign("mutual_guidance", priors, gt, labels, pred, scores, AssignParams(mg_metric="aligned"))
    assert not torch.equal(paper.cls_gt, aligned.cls_gt)  # another ranking of the L2C candidates
    assert torch.equal(paper.reg_gt, aligned.reg_gt)  # C2L untouched
    assert torch.equal((paper.cls_gt >= 0).sum(), (aligned.cls_gt >= 0).sum())  # the counts are MG's


def test_lambda_zero_gives_the_static_labels_and_one_the_paper():
    priors, gt, labels, pred, scores = _batch(3)
    static = assign("iou", priors, gt, labels)
    at_zero = assign("mutual_guidance", priors, gt, labels, pred, scores, AssignParams(mg_lambda=0.0))
    assert torch.equal(at_zero.cls_gt, static.cls_gt) and torch.equal(at_zero.reg_gt, static.reg_gt)
    paper = assign("mutual_guidance", priors, gt, labels, pred, scores)
    at_one = assign("mutual_guidance", priors, gt, labels, pred, scores, AssignParams(mg_lambda=1.0))
    assert torch.equal(at_one.cls_gt, paper.cls_gt) and torch.equal(at_one.reg_gt, paper.reg_gt)


def test_aligned_metric_windows_equal_dense_on_a_crowded_batch(monkeypatch):
    priors, gt, labels, pred, scores = _batch(4, g=150)
    params = AssignParams(mg_metric="aligned")
    monkeypatch.setattr(core, "CHUNK_ELEMENTS", 1 << 40)  # dense
    dense = assign("mutual_guidance", priors, gt, labels, pred, scores, params)
    monkeypatch.setattr(core, "CHUNK_ELEMENTS", 1 << 16)
    monkeypatch.setattr(sparse, "BLOCK_BUDGET", 4000)
    monkeypatch.setattr(sparse, "_MAX_PRED_FRACTION", 1.0)  # windows for IoU_regressed too, whatever they cost
    monkeypatch.setattr(sparse, "_MAX_ANCHOR_FRACTION", 1.0)
    windows = assign("mutual_guidance", priors, gt, labels, pred, scores, params)
    assert torch.equal(dense.cls_gt, windows.cls_gt) and torch.equal(dense.reg_gt, windows.reg_gt)


def test_ramp_of_lambda():
    p = AssignParams(mg_ramp=0.25)
    assert p.at_progress(0.0).mg_lambda == 0.0
    assert p.at_progress(0.125).mg_lambda == pytest.approx(0.5)
    assert p.at_progress(0.25).mg_lambda == 1.0 and p.at_progress(0.9).mg_lambda == 1.0
    assert AssignParams(mg_ramp=0.5, mg_lambda=0.8).at_progress(0.25).mg_lambda == pytest.approx(0.4)
    assert AssignParams().at_progress(0.0) == AssignParams()  # no ramp: the paper from the first step


def test_bad_variant_values_are_refused():
    priors, gt, labels, pred, scores = _batch(0)
    with pytest.raises(ValueError, match="mg_metric"):
        assign("mutual_guidance", priors, gt, labels, pred, scores, AssignParams(mg_metric="p_times_iou"))
    with pytest.raises(ValueError, match="mg_lambda"):
        assign("mutual_guidance", priors, gt, labels, pred, scores, AssignParams(mg_lambda=1.5))
    sizes = [(16, 16), (8, 8), (4, 4), (2, 2)]
    pts, st, rg = generate_points((8, 16, 32, 64), sizes, level_ranges(4))
    points = point_priors(pts, st, rg, [h * w for h, w in sizes])
    pred_pts = torch.cat([pts, pts], -1)[None].expand(2, -1, -1) + torch.tensor([-8.0, -8.0, 8.0, 8.0])
    with pytest.raises(ValueError, match="anchors only"):
        assign("mutual_guidance", points, gt, labels, pred_pts, scores[:, : points.num],
               AssignParams(mg_metric="aligned"))  # fmt: skip


def _points_batch():
    sizes = [(16, 16), (8, 8), (4, 4), (2, 2)]
    pts, st, rg = generate_points((8, 16, 32, 64), sizes, level_ranges(4))
    points = point_priors(pts, st, rg, [h * w for h, w in sizes])
    _, gt, labels, _, _ = _batch(4)
    gen = torch.Generator().manual_seed(1)
    pred = torch.cat([pts - 12, pts + 12], -1)[None] + torch.rand(2, points.num, 4, generator=gen) * 8
    return points, gt, labels, pred, torch.rand(2, points.num, 5, generator=gen)


@pytest.mark.parametrize("kind", ["anchors", "points"])
def test_task_aligned_with_c2l_regression_samples_is_the_composition(kind):
    priors, gt, labels, pred, scores = _batch(2) if kind == "anchors" else _points_batch()
    got = assign("task_aligned", priors, gt, labels, pred, scores, AssignParams(tal_reg="c2l"))
    tal = assign("task_aligned", priors, gt, labels, pred, scores)
    c2l = assign("classify_to_localize", priors, gt, labels, pred, scores)
    assert torch.equal(got.cls_gt, tal.cls_gt) and torch.equal(got.cls_target, tal.cls_target)
    assert torch.equal(got.reg_gt, c2l.reg_gt)
    assert not torch.equal(got.reg_gt, tal.reg_gt)  # the hybrid really changes the regression samples
    with pytest.raises(ValueError, match="tal_reg"):
        assign("task_aligned", priors, gt, labels, pred, scores, AssignParams(tal_reg="mg"))


@pytest.mark.parametrize("kind", ["anchors", "points"])
def test_mg_reg_cls_gives_the_classification_positives_as_regression_samples(kind):
    priors, gt, labels, pred, scores = _batch(3) if kind == "anchors" else _points_batch()
    params = AssignParams(mg_reg="cls") if kind == "points" else AssignParams(mg_reg="cls", mg_metric="aligned")
    got = assign("mutual_guidance", priors, gt, labels, pred, scores, params)
    mg = assign("mutual_guidance", priors, gt, labels, pred, scores, replace(params, mg_reg="c2l"))
    assert torch.equal(got.cls_gt, mg.cls_gt)  # the labels are MG's (here: ranked by the aligned metric)
    expected = torch.where(mg.cls_gt >= 0, mg.cls_gt, torch.full_like(mg.cls_gt, -1))
    assert torch.equal(got.reg_gt, expected) and not torch.equal(got.reg_gt, mg.reg_gt)
    # the other paper strategies ignore it (L2C and C2L alone keep their static other half)
    for strategy in ("localize_to_classify", "classify_to_localize"):
        a = assign(strategy, priors, gt, labels, pred, scores, replace(params, mg_reg="cls"))
        b = assign(strategy, priors, gt, labels, pred, scores, replace(params, mg_reg="c2l"))
        assert torch.equal(a.reg_gt, b.reg_gt) and torch.equal(a.cls_gt, b.cls_gt)
    with pytest.raises(ValueError, match="mg_reg"):
        assign("mutual_guidance", priors, gt, labels, pred, scores, AssignParams(mg_reg="tal"))
