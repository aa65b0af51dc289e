"""ATSS and task-aligned assignment on FCOS points, and the exact top-k the FCOS paper rules share with anchors."""

import pytest
import torch

from mgdet.assign import NEGATIVE, assign, fcos_priors, point_priors
from mgdet.assign.atss import virtual_anchors
from mgdet.assign.core import Reservation, topk_labels
from mgdet.assign.fcos import level_ranges
from mgdet.assign.reference import reference_atss, reference_task_aligned
from mgdet.models.fcos import decode_ltrb, fcos_loss, generate_points

STRIDES = (8, 16, 32)
SIZES = [(8, 8), (4, 4), (2, 2)]  # 64 px input


def _priors():
    points, strides, ranges = generate_points(STRIDES, SIZES, level_ranges(len(STRIDES)))
    return point_priors(points, strides, ranges, [h * w for h, w in SIZES])


def _batch(seed: int, b: int = 3, g: int = 5, c: int = 3):
    gen = torch.Generator().manual_seed(seed)
    priors = _priors()
    xy = torch.rand(b, g, 2, generator=gen, dtype=torch.float64) * 45
    gt_boxes = torch.cat([xy, xy + 6 + torch.rand(b, g, 2, generator=gen, dtype=torch.float64) * 30], -1)
    gt_labels = torch.randint(0, c, (b, g), generator=gen)
    gt_labels[0, -1] = -1  # padding
    gt_labels[-1] = -1  # an empty image
    deltas = torch.randn(b, priors.num, 4, generator=gen) * 0.5 + 1.0
    pred = decode_ltrb(deltas, priors.centres, priors.strides)
    scores = torch.rand(b, priors.num, c, generator=gen)
    return priors, gt_boxes, gt_labels, pred, scores


def test_virtual_anchors_are_8_strides_wide():
    priors = _priors()
    boxes = virtual_anchors(priors)
    assert boxes[0].tolist() == [4.0 - 32, 4.0 - 32, 4.0 + 32, 4.0 + 32]  # stride 8: side 64 around (4, 4)
    assert torch.equal(boxes[:, 2] - boxes[:, 0], 8 * priors.strides)


@pytest.mark.parametrize("seed", range(4))
def test_atss_on_points_equals_the_reference(seed: int):
    priors, gt_boxes, gt_labels, pred, scores = _batch(seed)
    got = assign("atss", priors, gt_boxes, gt_labels, pred, scores)
    exp = reference_atss(priors, gt_boxes, gt_labels, boxes=virtual_anchors(priors))
    assert torch.equal(got.cls_gt, exp.cls_gt) and torch.equal(got.reg_gt, got.cls_gt)
    assert (got.cls_gt >= 0).sum() > 0 and (got.cls_gt[-1] == NEGATIVE).all()


@pytest.mark.parametrize("seed", range(4))
def test_task_aligned_on_points_equals_the_reference(seed: int):
    priors, gt_boxes, gt_labels, pred, scores = _batch(seed)
    got = assign("task_aligned", priors, gt_boxes, gt_labels, pred, scores)
    exp = reference_task_aligned(priors.centres, gt_boxes, gt_labels, pred, scores)
    assert torch.equal(got.cls_gt, exp.cls_gt) and torch.equal(got.reg_gt, got.cls_gt)
    assert torch.allclose(got.cls_target.double(), exp.cls_target, rtol=1e-5, atol=1e-7)
    assert (got.cls_gt >= 0).sum() > 0 and (got.cls_gt[-1] == NEGATIVE).all()


def test_bare_tensors_give_the_same_result_as_priors():
    priors, gt_boxes, gt_labels, pred, scores = _batch(0)
    for s in ("atss", "task_aligned", "mutual_guidance"):
        rebuilt = fcos_priors(priors.centres, priors.strides, priors.ranges)
        a = assign(s, rebuilt, gt_boxes, gt_labels, pred, scores)
        b = assign(s, priors, gt_boxes, gt_labels, pred, scores)
        assert torch.equal(a.cls_gt, b.cls_gt) and torch.equal(a.reg_gt, b.reg_gt)


def test_the_deprecated_entry_points_warn_and_give_the_same_result():
    """assign_points, assign_fcos and the module mgdet.assign_fcos are deprecated aliases of assign (issue 23)."""
    import importlib
    import sys

    from mgdet.assign import assign_fcos, assign_points

    priors, gt_boxes, gt_labels, pred, scores = _batch(1)
    want = assign("mutual_guidance", priors, gt_boxes, gt_labels, pred, scores)
    with pytest.deprecated_call(match="assign_points is deprecated"):
        a = assign_points("mutual_guidance", priors, gt_boxes, gt_labels, pred, scores)
    with pytest.deprecated_call(match="assign_fcos is deprecated"):
        b = assign_fcos("mutual_guidance", priors.centres, priors.strides, priors.ranges, gt_boxes, gt_labels, pred,
                        scores)  # fmt: skip
    for got in (a, b):
        assert torch.equal(got.cls_gt, want.cls_gt) and torch.equal(got.reg_gt, want.reg_gt)
    sys.modules.pop("mgdet.assign_fcos", None)
    with pytest.deprecated_call(match="mgdet.assign_fcos is deprecated"):
        importlib.import_module("mgdet.assign_fcos")


def _top_np(criterion, candidates, valid, num_pos):
    """The top-Np step of the point rules: reserve among the candidates (no forced best), then each GT's top."""
    b, g, a = criterion.shape
    res = Reservation(b, g, a, criterion.device)
    res.add(slice(0, g), torch.where(candidates, criterion, 0.0))
    value, owner = res.result(valid, force_best=False)
    return topk_labels(value, owner, value > 0, num_pos, None)


def test_points_top_np_is_exact_and_never_takes_a_zero_entry():
    # one GT, 6 candidate points: criterion ties at 0.5 go to the lower point index; zeros are never taken
    crit = torch.tensor([[[0.2, 0.5, 0.0, 0.5, 0.5, 0.0, 0.9]]])
    cand = torch.tensor([[[True, True, True, True, True, True, False]]])  # point 6 is not a candidate
    valid = torch.tensor([[True]])
    out = _top_np(crit, cand, valid, torch.tensor([[3]]))
    assert out[0].tolist() == [NEGATIVE, 0, NEGATIVE, 0, 0, NEGATIVE, NEGATIVE]
    out = _top_np(crit, cand, valid, torch.tensor([[6]]))  # k above the live count: only the 4 non-zero ones
    assert out[0].tolist() == [0, 0, NEGATIVE, 0, 0, NEGATIVE, NEGATIVE]


def test_points_reservation_has_no_forced_best_point():
    # GT 0's best candidate (point 1) is reserved by GT 1 (higher value): GT 0 keeps only point 0, and no
    # point is forced back to it (anchors would force GT 0's best anchor to 1.0)
    crit = torch.tensor([[[0.3, 0.6], [0.0, 0.8]]])
    cand = torch.ones(1, 2, 2, dtype=torch.bool)
    out = _top_np(crit, cand, torch.tensor([[True, True]]), torch.tensor([[2, 2]]))
    assert out[0].tolist() == [0, 1]
    out = _top_np(crit, cand & torch.tensor([True, False])[:, None], torch.tensor([[True, True]]),
                  torch.tensor([[2, 2]]))  # fmt: skip
    assert out[0].tolist() == [0, 0]  # GT 1 has no candidate: point 1 stays GT 0's


def test_fcos_loss_uses_the_soft_target():
    priors, gt_boxes, gt_labels, pred, scores = _batch(1)
    a = assign("task_aligned", priors, gt_boxes, gt_labels, pred, scores)
    logits = torch.zeros(3, priors.num, 3)
    deltas = torch.zeros(3, priors.num, 4)
    ctr = torch.zeros(3, priors.num)
    soft = fcos_loss(a, logits, deltas, ctr, priors.centres, priors.strides, gt_boxes.float(), gt_labels)
    hard_a = type(a)(a.cls_gt, a.reg_gt)
    hard = fcos_loss(hard_a, logits, deltas, ctr, priors.centres, priors.strides, gt_boxes.float(), gt_labels)
    assert torch.isfinite(soft["loss_cls"]) and soft["loss_cls"] != hard["loss_cls"]
    assert soft["loss_reg"] == hard["loss_reg"] and soft["loss_ctr"] == hard["loss_ctr"]
