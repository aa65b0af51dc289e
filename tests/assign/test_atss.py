"""ATSS on anchors: hand-computed thresholds, the centre rule, conflicts, padding, and the per-image reference."""

import math

import pytest
import torch

from mgdet.anchors import AnchorLayout, paper_layout
from mgdet.assign import NEGATIVE, Priors, assign, layout_priors, single_level_priors
from mgdet.assign.atss import atss_assign
from mgdet.assign.core import prepare_gt
from mgdet.assign.reference import reference_atss

GT = torch.tensor([[[0.0, 0.0, 100.0, 100.0]]])  # [1, 1, 4], centre (50, 50)
LABELS = torch.tensor([[0]])


def strips(ious):
    """Boxes [0, 0, 100, 100 v] inside GT: IoU with GT is exactly v, centre (50, 50 v) at distance 50 (1 - v)."""
    return torch.tensor([[0.0, 0.0, 100.0, 100.0 * v] for v in ious])


def _atss(priors: Priors, gt_boxes, gt_labels, topk: int = 9):
    boxes, _, valid = prepare_gt(gt_boxes, gt_labels)
    return atss_assign(priors, boxes, valid, topk=topk)


def test_threshold_is_mean_plus_std_of_the_candidates():
    ious = [0.9, 0.8, 0.75, 0.5, 0.45, 0.4, 0.35, 0.3, 0.2]
    far = torch.tensor([[200.0, 200.0, 210.0, 210.0]])  # IoU 0, the 10th closest centre
    priors = single_level_priors(torch.cat([strips(ious), far]))
    mean = sum(ious) / 9
    std = math.sqrt(sum((v - mean) ** 2 for v in ious) / 8)  # sample std (Bessel), as the authors' code
    assert mean + std == pytest.approx(0.7603, abs=1e-4)  # 0.9, 0.8 above; 0.75 below
    a = _atss(priors, GT, LABELS)
    assert a.cls_gt[0].tolist() == [0, 0] + [NEGATIVE] * 8
    assert torch.equal(a.reg_gt, a.cls_gt) and a.cls_target is None
    # with k = 10 the far anchor (IoU 0) joins the candidates: mean + std drops to 0.7469 and 0.75 passes
    vals = ious + [0.0]
    m10 = sum(vals) / 10
    assert m10 + math.sqrt(sum((v - m10) ** 2 for v in vals) / 9) == pytest.approx(0.7469, abs=1e-4)
    assert _atss(priors, GT, LABELS, topk=10).cls_gt[0].tolist() == [0, 0, 0] + [NEGATIVE] * 7


def test_centre_must_lie_inside_the_gt():
    gt = torch.tensor([[[0.0, 0.0, 10.0, 10.0]]])
    far = [[100.0 + 10 * i, 100.0, 105.0 + 10 * i, 105.0] for i in range(7)]  # IoU 0
    # IoU 0.5 with the centre inside, IoU 0.5 with the centre on the left edge (l = 0 is not > 0.01)
    anchors = torch.tensor([[0.0, 0.0, 10.0, 5.0], [-10.0, 0.0, 10.0, 10.0], *far])
    a = _atss(single_level_priors(anchors), gt, LABELS)  # mean 1/9 + std 0.2205 = 0.332 < 0.5
    assert a.cls_gt[0].tolist() == [0] + [NEGATIVE] * 8


def test_candidates_are_whole_locations_per_level():
    # 2 levels, 3 anchors per location: candidates = 9 closest locations per level x 3 anchors
    layout = AnchorLayout((8, 16), ((16.0,), (32.0,)), (1.0, 2.0, 0.5))
    priors = layout_priors(layout, 64)
    assert priors.level_sizes == (8 * 8 * 3, 4 * 4 * 3) and priors.per_location == 3
    from mgdet.assign.atss import atss_candidates

    gt = torch.tensor([[[10.0, 10.0, 30.0, 26.0]]])
    cand = atss_candidates(priors, (gt[..., :2] + gt[..., 2:]) / 2)  # [1, 1, 54]
    assert cand.shape == (1, 1, 2 * 9 * 3)
    loc = cand[0, 0].view(-1, 3)  # every location contributes its 3 anchors, consecutively
    assert torch.equal(loc - loc[:, :1], torch.tensor([0, 1, 2]).expand(18, 3))
    assert (cand[0, 0, :27] < 192).all() and (cand[0, 0, 27:] >= 192).all()


def test_distance_ties_go_to_the_lower_location():
    # GT centre (16, 16) sits on a corner of four stride-8 cells of level 0: the four nearest are tied
    layout = AnchorLayout((8,), ((8.0,),), (1.0,))
    priors = layout_priors(layout, 64)
    from mgdet.assign.atss import atss_candidates

    cand = atss_candidates(priors, torch.tensor([[[16.0, 16.0]]]), topk=2)
    assert cand[0, 0].tolist() == [9, 10]  # cells (1, 1) and (2, 1) of (12, 12), (20, 12), (12, 20), (20, 20)


def test_conflict_goes_to_the_highest_iou():
    # two overlapping GTs; 15 far anchors (IoU 0) lower both thresholds; all 18 anchors are candidates
    gts = torch.tensor([[[0.0, 0.0, 20.0, 20.0], [8.0, 0.0, 28.0, 20.0]]])
    far = [[100.0 + 10 * i, 100.0, 105.0 + 10 * i, 105.0] for i in range(15)]
    anchors = torch.tensor([[0.0, 0.0, 20.0, 20.0], [6.0, 0.0, 26.0, 20.0], [8.0, 0.0, 28.0, 20.0], *far])
    # GT 0: IoUs 1, 14/26, 12/28 -> threshold 0.381; GT 1: 12/28, 18/22, 1 -> threshold 0.429
    # anchor 1 passes both (0.538 for GT 0, 0.818 for GT 1) -> GT 1; anchor 2 too (0.429, 1.0) -> GT 1
    a = _atss(single_level_priors(anchors), gts, torch.tensor([[0, 1]]), topk=18)
    assert a.cls_gt[0].tolist() == [0, 1, 1] + [NEGATIVE] * 15


def test_padding_and_empty_images():
    priors = layout_priors(paper_layout((8, 16, 32)), 64)
    gts = torch.zeros(3, 2, 4)
    labels = torch.full((3, 2), -1)
    gts[1, 0] = torch.tensor([4.0, 6.0, 40.0, 50.0])
    labels[1, 0] = 2
    gts[1, 1] = torch.tensor([4.0, 6.0, 40.0, 50.0])  # padding with the same box: must not count
    a = assign("atss", priors, gts, labels)
    assert (a.cls_gt[0] == NEGATIVE).all() and (a.cls_gt[2] == NEGATIVE).all()
    assert ((a.cls_gt[1] == 0) | (a.cls_gt[1] == NEGATIVE)).all() and (a.cls_gt[1] == 0).any()
    a = assign("atss", priors, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.long))
    assert a.cls_gt.shape == (2, priors.num) and (a.cls_gt == NEGATIVE).all()


def test_bare_anchor_tensor_is_refused():
    with pytest.raises(ValueError, match="per pyramid level"):
        assign("atss", strips([0.9, 0.5]), GT, LABELS)


def _random_gt(gen: torch.Generator, b: int, g: int, size: float):
    xy = torch.rand(b, g, 2, generator=gen, dtype=torch.float64) * size * 0.8
    wh = 4 + torch.rand(b, g, 2, generator=gen, dtype=torch.float64) * size * 0.5
    labels = torch.randint(0, 3, (b, g), generator=gen)
    labels[0, -1] = -1  # padding
    labels[-1] = -1  # an empty image
    return torch.cat([xy, xy + wh], -1), labels


LAYOUTS = {
    "paper_6_per_location": paper_layout((8, 16, 32)),  # 4 locations on the last level: k = 4 there
    "one_per_location": AnchorLayout((8, 16), ((14.0,), (30.0,)), (1.0,)),
}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_batched_equals_per_image_reference(layout: str, seed: int):
    gen = torch.Generator().manual_seed(seed)
    priors = layout_priors(LAYOUTS[layout], 64)
    # centres off the grid's symmetric points: no exact distance or IoU ties
    gt_boxes, gt_labels = _random_gt(gen, 3, 5, 64.0)
    got = assign("atss", priors, gt_boxes, gt_labels)
    exp = reference_atss(priors, gt_boxes, gt_labels)
    assert torch.equal(got.cls_gt, exp.cls_gt) and torch.equal(got.reg_gt, exp.reg_gt)
    assert (got.cls_gt >= 0).sum() > 0
