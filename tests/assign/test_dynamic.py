"""The authors' later Mutual Guidance (``mutual_guidance_dynamic``, issue 25): hand cases for the dynamic count,
the reservation ties and the amplification clamp, and the batched rule against the per-image reference loop."""

from __future__ import annotations

import math

import pytest
import torch

from mgdet.anchors import paper_layout
from mgdet.assign import NEGATIVE, AssignParams, assign, layout_priors, point_priors
from mgdet.assign.dynamic import amplified_exp
from mgdet.assign.fcos import level_ranges
from mgdet.assign.reference import reference_dynamic
from mgdet.models.fcos import generate_points

GT = torch.tensor([[[0.0, 0.0, 10.0, 10.0]]])
LABELS = torch.tensor([[0]])


def _strips(ious: list[float]) -> torch.Tensor:
    """Boxes [0, 0, 10, 10 * iou]: IoU with GT [0, 0, 10, 10] is exactly ``iou``."""
    return torch.tensor([[0.0, 0.0, 10.0, 10.0 * v] for v in ious])


def _run(ious_reg, ious_anchor, score=0.0, gt=GT, labels=LABELS, **params):
    anchors = _strips(ious_anchor)
    preds = _strips(ious_reg)[None].expand(gt.shape[0], -1, -1)
    scores = torch.full((gt.shape[0], len(ious_reg), 1), score)
    return assign("mutual_guidance_dynamic", anchors, gt, labels, preds, scores, AssignParams(**params))


def test_the_count_is_the_floor_of_the_top_15_sum_at_least_one_at_most_the_candidates():
    # IoU_regressed 0.9 + 0.8 + 0.7 + 0.6 + 0.5 = 3.5 -> k = 3: the three best, their IoU as soft target
    a = _run([0.5, 0.9, 0.6, 0.8, 0.7], [0.1] * 5)
    assert a.cls_gt[0].tolist() == [NEGATIVE, 0, NEGATIVE, 0, 0]
    assert torch.allclose(a.cls_target[0], torch.tensor([0.0, 0.9, 0.0, 0.8, 0.7]))
    # every quality small: k = max(1, floor(0.6)) = 1
    assert (_run([0.3, 0.2, 0.1], [0.1] * 3).cls_gt[0] >= 0).sum() == 1
    # only the top 15 count: 20 candidates of 0.25 -> floor(15 x 0.25) = 3
    assert (_run([0.25] * 20, [0.1] * 20).cls_gt[0] >= 0).sum() == 3
    assert (_run([0.25] * 20, [0.1] * 20, mgd_topq=20).cls_gt[0] >= 0).sum() == 5
    # two candidates of 1.0: k = min(2, 2); a zero entry is never taken
    a = _run([1.0, 0.0, 1.0], [0.1] * 3)
    assert a.cls_gt[0].tolist() == [0, NEGATIVE, 0]


def test_reservation_ties_go_to_the_lower_gt_and_a_gt_may_get_nothing():
    gt = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]]])  # the same box twice
    a = _run([0.9, 0.8], [0.9, 0.8], gt=gt, labels=torch.tensor([[0, 0]]))
    # both priors are reserved by GT 0 (k = floor(0.9 + 0.8) = 1); GT 1 has no candidate left: k = 0
    assert a.cls_gt[0].tolist() == [0, NEGATIVE] and a.reg_gt[0].tolist() == [0, NEGATIVE]


def test_the_amplification_saturates_at_one_and_ties_go_to_the_lower_prior():
    assert math.isclose(float(amplified_exp(torch.tensor(0.8), torch.tensor(1.0), 2.0)), 1.0)
    assert math.isclose(
        float(amplified_exp(torch.tensor(0.2), torch.tensor(1.0), 2.0)), 0.2 * math.exp(0.5), rel_tol=1e-6
    )
    # IoU_anchor 0.7 and 0.8 with p = 1: both clamp to 1.0 (0.7 e^0.5 = 1.15); 0.3 e^0.5 = 0.49; sum 2.49 -> k = 2
    a = _run([0.5] * 3, [0.3, 0.8, 0.7], score=1.0)
    assert a.reg_gt[0].tolist() == [NEGATIVE, 0, 0]
    assert torch.allclose(a.reg_weight[0], torch.tensor([0.0, 1.0, 1.0]))
    # regression and classification counts are independent
    assert (a.cls_gt[0] >= 0).sum() == 1  # IoU_regressed 0.5 x 3 = 1.5 -> 1


def _priors(kind: str):
    """The paper's anchors at 64 px, or FCOS points on three levels."""
    if kind == "anchors":
        return layout_priors(paper_layout(base_size=9.6), 64)
    sizes = [(8, 8), (4, 4), (2, 2)]
    pts, st, rg = generate_points((8, 16, 32), sizes, level_ranges(3))
    return point_priors(pts, st, rg, [h * w for h, w in sizes])


def _batch(seed: int, num_priors: int, centres: torch.Tensor, size: float, g: int = 12):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, int(size) - 24, (3, g, 2), generator=gen).float()  # integer corners: exact ties
    gt = torch.cat([xy, xy + torch.randint(6, 40, (3, g, 2), generator=gen).float()], -1).clamp(max=size)
    gt[:, 1] = gt[:, 0]
    labels = torch.randint(0, 4, (3, g), generator=gen)
    labels[2, -3:] = -1
    pred = torch.cat([centres, centres], -1) + torch.tensor([-8.0, -8.0, 8.0, 8.0])
    pred = pred + (torch.rand(3, num_priors, 4, generator=gen) - 0.5) * 8
    scores = torch.rand(3, num_priors, 4, generator=gen)
    return gt, labels, pred, scores


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", ["anchors", "points"])
def test_the_batched_rule_equals_the_reference_loop(seed, kind):
    priors = _priors(kind)
    gt, labels, pred, scores = _batch(seed, priors.num, priors.centres, 64.0)
    got = assign("mutual_guidance_dynamic", priors, gt, labels, pred, scores)
    want = reference_dynamic(priors, gt, labels, pred, scores)
    assert torch.equal(got.cls_gt, want.cls_gt) and torch.equal(got.reg_gt, want.reg_gt)
    assert torch.allclose(got.cls_target, want.cls_target) and torch.allclose(got.reg_weight, want.reg_weight)
    assert (got.cls_gt >= 0).sum() > 0 and (got.reg_gt >= 0).sum() > 0


@pytest.mark.parametrize("kind", ["anchors", "points"])
def test_the_soft_target_control_keeps_the_labels_and_uses_the_regressed_iou(kind):
    """train.mg_soft_target (issue 25, item 2): MG / L2C positives get IoU(regressed box, its GT) as soft target;
    the labels are those of the default rule; rules without L2C are unchanged."""
    from mgdet.boxes import box_iou

    priors = _priors(kind)
    gt, labels, pred, scores = _batch(0, priors.num, priors.centres, 64.0)
    for strategy in ("mutual_guidance", "localize_to_classify", "classify_to_localize"):
        hard = assign(strategy, priors, gt, labels, pred, scores)
        soft = assign(strategy, priors, gt, labels, pred, scores, AssignParams(mg_soft_target=True))
        assert torch.equal(hard.cls_gt, soft.cls_gt) and torch.equal(hard.reg_gt, soft.reg_gt)
        if strategy == "classify_to_localize":
            assert soft.cls_target is None
            continue
        assert hard.cls_target is None and soft.cls_target is not None
        for b in range(gt.shape[0]):
            iou = box_iou(gt[b], pred[b])  # [G, A]
            pos = soft.cls_gt[b] >= 0
            want = torch.zeros(priors.num)
            want[pos] = iou[soft.cls_gt[b][pos], pos.nonzero()[:, 0]]
            assert torch.allclose(soft.cls_target[b], want)
        assert (soft.cls_target > 0).sum() > 0
