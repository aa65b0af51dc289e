"""Task-aligned assignment on anchors: the metric at beta = 6, top-k, conflicts, the soft target, padding,
and the per-image reference."""

import pytest
import torch

from mgdet.anchors import paper_layout
from mgdet.assign import NEGATIVE, assign, layout_priors, single_level_priors
from mgdet.assign.reference import reference_task_aligned
from mgdet.assign.task_aligned import alignment_metric

GT = torch.tensor([[[0.0, 0.0, 100.0, 100.0]]])  # [1, 1, 4]
LABELS = torch.tensor([[0]])


def strips(ious):
    """Boxes [0, 0, 100, 100 v] inside GT: IoU with GT is exactly v."""
    return torch.tensor([[0.0, 0.0, 100.0, 100.0 * v] for v in ious])


def _scores(values, classes: int = 2):
    s = torch.zeros(1, len(values), classes)
    s[0, :, 0] = torch.tensor(values)
    return s


def test_well_localized_anchor_beats_a_confident_one_at_beta_6():
    # anchor 0: score 0.9, IoU 0.5 -> t = 0.9 * 0.5^6 = 0.0141; anchor 1: score 0.3, IoU 0.9 -> t = 0.3 * 0.9^6 = 0.1594
    anchors = torch.tensor([[0.0, 0.0, 100.0, 100.0]] * 2)  # centres (50, 50): both candidates
    pred = strips([0.5, 0.9])[None]
    scores = _scores([0.9, 0.3])
    t = alignment_metric(torch.tensor([0.9, 0.3]), torch.tensor([0.5, 0.9]))
    assert t.tolist() == pytest.approx([0.9 * 0.5**6, 0.3 * 0.9**6])
    from mgdet.assign.core import centres_inside, prepare_gt
    from mgdet.assign.task_aligned import task_aligned_assign

    boxes, labels, valid = prepare_gt(GT, LABELS)
    inside = centres_inside(single_level_priors(anchors).centres, boxes, 0.01)
    one = task_aligned_assign(inside, boxes, labels, pred, scores, topk=1)
    assert one.cls_gt[0].tolist() == [NEGATIVE, 0]  # the well-localized anchor wins the single place
    linear = task_aligned_assign(inside, boxes, labels, pred, scores, topk=1, beta=1.0)
    assert linear.cls_gt[0].tolist() == [0, NEGATIVE]  # at beta = 1 the confident one would (0.45 > 0.27)
    # both positive with k = 13; soft target t / max_t * max_u (max over the GT's positives: 0.1594, 0.9)
    a = assign("task_aligned", single_level_priors(anchors), GT, LABELS, pred, scores)
    assert a.cls_gt[0].tolist() == [0, 0] and torch.equal(a.reg_gt, a.cls_gt)
    expected = [0.9 * 0.5**6 / (0.3 * 0.9**6) * 0.9, 0.9]
    assert a.cls_target[0].tolist() == pytest.approx(expected, rel=1e-5)


def test_candidates_inside_the_gt_and_never_a_zero_metric():
    anchors = torch.tensor([[0.0, 0.0, 100.0, 100.0], [150.0, 0.0, 250.0, 100.0], [0.0, 0.0, 100.0, 100.0]])
    pred = torch.stack([strips([0.8])[0], strips([0.95])[0], torch.tensor([300.0, 300.0, 310.0, 310.0])])[None]
    # anchor 1 regresses best but its centre (200, 50) is outside; anchor 2 has IoU 0 -> t = 0
    a = assign("task_aligned", single_level_priors(anchors), GT, LABELS, pred, _scores([0.5, 0.9, 0.9]))
    assert a.cls_gt[0].tolist() == [0, NEGATIVE, NEGATIVE]
    assert a.cls_target[0].tolist() == pytest.approx([0.8, 0.0, 0.0])  # the single positive gets max_u


def test_conflict_goes_to_the_highest_iou_and_ties_to_the_lower_index():
    gts = torch.tensor([[[0.0, 0.0, 100.0, 100.0], [0.0, 0.0, 100.0, 80.0]]])
    labels = torch.tensor([[0, 1]])
    anchors = torch.tensor([[0.0, 0.0, 100.0, 100.0]] * 3)  # all inside both GTs
    # anchor boxes: IoU with GT0 / GT1: [0,0,100,90] -> 0.9 / 0.889; [0,0,100,80] -> 0.8 / 1.0
    pred = torch.tensor([[[0.0, 0.0, 100.0, 90.0], [0.0, 0.0, 100.0, 80.0], [0.0, 0.0, 100.0, 80.0]]])
    scores = torch.full((1, 3, 2), 0.5)
    a = assign("task_aligned", single_level_priors(anchors), gts, labels, pred, scores)
    assert a.cls_gt[0].tolist() == [0, 1, 1]
    # equal metrics: with k = 1 the lower prior index is taken
    from mgdet.assign.core import centres_inside, prepare_gt
    from mgdet.assign.task_aligned import task_aligned_assign

    boxes, lab, valid = prepare_gt(GT, LABELS)
    same = strips([0.7, 0.7, 0.7])[None]
    inside = centres_inside(single_level_priors(anchors).centres, boxes, 0.01)
    one = task_aligned_assign(inside, boxes, lab, same, torch.full((1, 3, 2), 0.5), topk=1)
    assert one.cls_gt[0].tolist() == [0, NEGATIVE, NEGATIVE]


def test_padding_and_empty_images():
    priors = layout_priors(paper_layout((8, 16, 32)), 64)
    gen = torch.Generator().manual_seed(0)
    gts = torch.zeros(3, 2, 4)
    labels = torch.full((3, 2), -1)
    gts[1, 0] = torch.tensor([4.0, 6.0, 40.0, 50.0])
    labels[1, 0] = 2
    gts[1, 1] = torch.tensor([4.0, 6.0, 40.0, 50.0])  # padding with the same box: must not count
    pred = priors.boxes[None].expand(3, -1, -1) + torch.rand(3, priors.num, 4, generator=gen)
    scores = torch.rand(3, priors.num, 3, generator=gen)
    a = assign("task_aligned", priors, gts, labels, pred, scores)
    assert (a.cls_gt[0] == NEGATIVE).all() and (a.cls_gt[2] == NEGATIVE).all()
    assert set(a.cls_gt[1].unique().tolist()) == {NEGATIVE, 0} and (a.cls_gt[1] == 0).sum() <= 13
    assert (a.cls_target[a.cls_gt < 0] == 0).all() and (a.cls_target[a.cls_gt >= 0] > 0).all()
    a = assign("task_aligned", priors, torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.long),
               pred[:2], scores[:2])  # fmt: skip
    assert (a.cls_gt == NEGATIVE).all() and (a.cls_target == 0).all()


@pytest.mark.parametrize("seed", range(4))
def test_batched_equals_per_image_reference(seed: int):
    gen = torch.Generator().manual_seed(seed)
    priors = layout_priors(paper_layout((8, 16, 32)), 64)
    b, g, c = 3, 6, 3
    xy = torch.rand(b, g, 2, generator=gen, dtype=torch.float64) * 45
    gt_boxes = torch.cat([xy, xy + 6 + torch.rand(b, g, 2, generator=gen, dtype=torch.float64) * 30], -1)
    gt_labels = torch.randint(0, c, (b, g), generator=gen)
    gt_labels[0, -1] = -1  # padding
    gt_labels[2] = -1  # an empty image
    pred = priors.boxes[None].double() + (torch.rand(b, priors.num, 4, generator=gen, dtype=torch.float64) - 0.5) * 16
    scores = torch.rand(b, priors.num, c, generator=gen, dtype=torch.float64)
    got = assign("task_aligned", priors, gt_boxes, gt_labels, pred, scores)
    exp = reference_task_aligned(priors.centres, gt_boxes, gt_labels, pred, scores)
    assert torch.equal(got.cls_gt, exp.cls_gt) and torch.equal(got.reg_gt, exp.reg_gt)
    assert torch.allclose(got.cls_target.double(), exp.cls_target, rtol=1e-5, atol=1e-7)
    assert (got.cls_gt >= 0).sum() > 10
    # several GTs claimed some anchor and lost it: fewer than 13 positives for such a GT
    assert ((got.cls_gt[:2, :, None] == torch.arange(g)).sum(1) <= 13).all()
