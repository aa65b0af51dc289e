import math

import pytest
import torch

from mgdet.assign import IGNORED, NEGATIVE, Assignment
from mgdet.boxes import encode
from mgdet.losses import LossConfig, balanced_l1_loss, detection_loss, quality_focal_loss, sigmoid_focal_loss

LN2 = math.log(2.0)


def test_focal_loss_hand_values():
    # logit 0 -> p = 0.5. positive: 0.25 * (1 - 0.5)^1 * ln 2 ; negative: 0.75 * 0.5^1 * ln 2
    loss = sigmoid_focal_loss(torch.zeros(2), torch.tensor([1.0, 0.0]), alpha=0.25, gamma=1.0)
    assert loss.tolist() == pytest.approx([0.25 * 0.5 * LN2, 0.75 * 0.5 * LN2])
    # gamma = 2 (RetinaNet's usual): one more factor 0.5
    loss2 = sigmoid_focal_loss(torch.zeros(2), torch.tensor([1.0, 0.0]), alpha=0.25, gamma=2.0)
    assert loss2.tolist() == pytest.approx([0.25 * 0.25 * LN2, 0.75 * 0.25 * LN2])


def test_balanced_l1_hand_values():
    b = math.exp(1.5 / 0.5) - 1  # e^3 - 1 = 19.0855...
    small = 0.5 / b * (b * 0.05 + 1) * math.log(b * 0.05 / 0.11 + 1) - 0.5 * 0.05  # x = 0.05 < beta
    large = 1.5 * 0.5 + 1.5 / b - 0.5 * 0.11  # x = 0.5 >= beta
    out = balanced_l1_loss(torch.tensor([0.05, -0.5, 0.0]), torch.zeros(3))
    assert out.tolist() == pytest.approx([small, large, 0.0], rel=1e-5)
    assert small == pytest.approx(0.0911971, rel=1e-5) and large == pytest.approx(0.7735935, rel=1e-5)
    # continuity at beta
    eps = 1e-4
    left, right = balanced_l1_loss(torch.tensor([0.11 - eps, 0.11 + eps]), torch.zeros(2)).tolist()
    assert abs(left - right) < 1e-3


def test_detection_loss_tiny_case():
    # 3 anchors, 2 classes, 1 GT of class 1 matching anchor 0 exactly.
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0], [5.0, 5.0, 15.0, 15.0]])
    gt_boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0]]])
    gt_labels = torch.tensor([[1]])
    # anchor 0 positive (cls + reg), anchor 1 negative, anchor 2 ignored with a huge logit (must not count)
    a = Assignment(torch.tensor([[0, NEGATIVE, IGNORED]]), torch.tensor([[0, NEGATIVE, NEGATIVE]]))
    logits = torch.tensor([[[0.0, 0.0], [0.0, 0.0], [50.0, 50.0]]])
    deltas = torch.zeros(1, 3, 4)
    deltas[0, 0] = torch.tensor([0.05, 0.0, 0.0, -0.5])  # target deltas are 0 (perfect anchor)
    out = detection_loss(a, logits, deltas, anchors, gt_boxes, gt_labels)
    pos, neg = 0.25 * 0.5 * LN2, 0.75 * 0.5 * LN2
    # anchor 0: class 1 positive, class 0 negative; anchor 1: two negatives; 1 positive
    assert out["loss_cls"].item() == pytest.approx(pos + 3 * neg, rel=1e-5)
    b = math.exp(3) - 1
    small = 0.5 / b * (b * 0.05 + 1) * math.log(b * 0.05 / 0.11 + 1) - 0.5 * 0.05
    large = 1.5 * 0.5 + 1.5 / b - 0.5 * 0.11
    assert out["loss_reg"].item() == pytest.approx((small + large) / 4, rel=1e-5)
    assert out["num_cls_pos"].item() == 1 and out["num_reg_pos"].item() == 1


def test_detection_loss_uses_different_cls_and_reg_samples():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 12.0, 12.0]])
    gt_boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0]]])
    gt_labels = torch.tensor([[0]])
    a = Assignment(torch.tensor([[0, NEGATIVE]]), torch.tensor([[NEGATIVE, 0]]))
    deltas = torch.zeros(1, 2, 4, requires_grad=True)
    logits = torch.zeros(1, 2, 1, requires_grad=True)
    out = detection_loss(a, logits, deltas, anchors, gt_boxes, gt_labels)
    (out["loss_cls"] + out["loss_reg"]).backward()
    # only anchor 1 receives a regression gradient
    assert deltas.grad[0, 0].abs().sum() == 0 and deltas.grad[0, 1].abs().sum() > 0
    target = encode(gt_boxes[0, 0], anchors[1])
    expected = balanced_l1_loss(torch.zeros(4), target).sum() / 4
    assert out["loss_reg"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_no_positives_is_finite_and_connected():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    a = Assignment(torch.tensor([[NEGATIVE]]), torch.tensor([[NEGATIVE]]))
    logits = torch.zeros(1, 1, 3, requires_grad=True)
    deltas = torch.zeros(1, 1, 4, requires_grad=True)
    out = detection_loss(a, logits, deltas, anchors, torch.zeros(1, 1, 4), torch.tensor([[-1]]))
    total = out["loss_cls"] + out["loss_reg"]
    total.backward()
    assert torch.isfinite(total) and out["loss_reg"].item() == 0.0
    assert deltas.grad is not None
    # normalised by max(1, #pos) = 1: three negatives at p = 0.5
    assert out["loss_cls"].item() == pytest.approx(3 * 0.75 * 0.5 * LN2, rel=1e-5)


def test_loss_config_overrides():
    cfg = LossConfig(focal_gamma=2.0, reg_weight=2.0)
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    a = Assignment(torch.tensor([[0]]), torch.tensor([[0]]))
    deltas = torch.full((1, 1, 4), 0.5)
    out = detection_loss(a, torch.zeros(1, 1, 1), deltas, anchors, anchors[None], torch.tensor([[0]]), cfg)
    assert out["loss_cls"].item() == pytest.approx(0.25 * 0.25 * LN2, rel=1e-5)
    b = math.exp(3) - 1
    assert out["loss_reg"].item() == pytest.approx(2 * (1.5 * 0.5 + 1.5 / b - 0.5 * 0.11), rel=1e-5)


def test_zero_gt_columns():
    a = Assignment(torch.full((2, 3), NEGATIVE), torch.full((2, 3), NEGATIVE))
    out = detection_loss(a, torch.zeros(2, 3, 2), torch.zeros(2, 3, 4), torch.zeros(3, 4), torch.zeros(2, 0, 4),
                         torch.zeros(2, 0, dtype=torch.long))  # fmt: skip
    assert out["loss_cls"].item() == pytest.approx(12 * 0.75 * 0.5 * LN2, rel=1e-5) and out["loss_reg"] == 0


def test_quality_focal_loss_hand_values():
    # logit 0 -> p = 0.5; BCE(0.5, t) = ln 2 for every t
    loss = quality_focal_loss(torch.zeros(3), torch.tensor([0.8, 0.0, 0.3]), alpha=0.25, gamma=1.0)
    assert loss.tolist() == pytest.approx([0.25 * 0.3 * LN2, 0.75 * 0.5 * LN2, 0.25 * 0.2 * LN2])
    # gamma = 2: |t - p| squared; alpha < 0: no weighting
    loss2 = quality_focal_loss(torch.zeros(1), torch.tensor([0.8]), alpha=-1, gamma=2.0)
    assert loss2.tolist() == pytest.approx([0.09 * LN2])
    # logit ln 3 -> p = 0.75, t = 0.75: zero loss at the target
    at_target = quality_focal_loss(torch.tensor([math.log(3.0)]), torch.tensor([0.75]))
    assert at_target.item() == pytest.approx(0.0, abs=1e-6)
    # a logit x, target t: BCE = -(t ln p + (1 - t) ln(1 - p)); p = sigmoid(2) = 0.880797
    p = 1 / (1 + math.exp(-2.0))
    bce = -(0.4 * math.log(p) + 0.6 * math.log(1 - p))
    assert quality_focal_loss(torch.tensor([2.0]), torch.tensor([0.4])).item() == pytest.approx(
        0.25 * bce * abs(0.4 - p), rel=1e-5
    )


def test_quality_focal_loss_equals_focal_loss_on_hard_targets():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 4, generator=gen) * 3
    targets = (torch.rand(50, 4, generator=gen) > 0.7).float()
    for gamma in (1.0, 2.0):
        assert torch.allclose(quality_focal_loss(logits, targets, 0.25, gamma),
                              sigmoid_focal_loss(logits, targets, 0.25, gamma), atol=1e-6)  # fmt: skip


def test_detection_loss_with_a_soft_target():
    # 3 anchors, 2 classes, 1 GT of class 1; anchors 0 and 1 positive with soft targets 0.8 and 0.3
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0]])
    gt_boxes = torch.tensor([[[0.0, 0.0, 10.0, 10.0]]])
    gt_labels = torch.tensor([[1]])
    cls_gt = torch.tensor([[0, 0, NEGATIVE]])
    a = Assignment(cls_gt, cls_gt.clone(), cls_target=torch.tensor([[0.8, 0.3, 0.0]]))
    deltas = torch.zeros(1, 3, 4)
    out = detection_loss(a, torch.zeros(1, 3, 2), deltas, anchors, gt_boxes, gt_labels)
    pos = 0.25 * (0.3 + 0.2) * LN2  # |0.8 - 0.5| and |0.3 - 0.5|
    neg = 4 * 0.75 * 0.5 * LN2  # class 0 of anchors 0 and 1, both classes of anchor 2
    assert out["loss_cls"].item() == pytest.approx((pos + neg) / max(1.0, 0.8 + 0.3), rel=1e-5)
    # regression: unweighted Balanced L1 on both positives / (4 * 2)
    target = encode(gt_boxes[0, 0].expand(2, 4), anchors[:2])
    expected = balanced_l1_loss(torch.zeros(2, 4), target).sum() / 8
    assert out["loss_reg"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out["num_cls_pos"].item() == 2
    # soft targets of 1.0 give the hard-label loss exactly
    hard = Assignment(cls_gt, cls_gt.clone())
    ones = Assignment(cls_gt, cls_gt.clone(), cls_target=torch.tensor([[1.0, 1.0, 0.0]]))
    logits = torch.randn(1, 3, 2, generator=torch.Generator().manual_seed(1))
    got = detection_loss(ones, logits, deltas, anchors, gt_boxes, gt_labels)["loss_cls"]
    assert got.item() == pytest.approx(
        detection_loss(hard, logits, deltas, anchors, gt_boxes, gt_labels)["loss_cls"].item()
    )


# --- the authors' later loss (LossConfig(style="authors"), issue 25 item 1) -------------------------------------


def test_varifocal_poly_hand_values():
    from mgdet.losses import varifocal_poly_loss

    x = torch.tensor([[0.0, 2.0, -1.0]])
    t = torch.tensor([[0.0, 0.8, 0.0]])
    got = varifocal_poly_loss(x, t)[0]

    def sig(v):
        return 1 / (1 + math.exp(-v))

    def bce(v, target):
        return -(target * math.log(sig(v)) + (1 - target) * math.log(1 - sig(v)))

    # negative cells: bce(x, 0) * 0.75 p^2 + (1 - (1 - p))^3 = ... + p^3
    for i in (0, 2):
        p = sig(float(x[0, i]))
        assert float(got[i]) == pytest.approx(bce(float(x[0, i]), 0.0) * 0.75 * p**2 + p**3, rel=1e-5)
    p = sig(2.0)  # positive cell: bce(x, t) * t + (1 - p)^3
    assert float(got[1]) == pytest.approx(bce(2.0, 0.8) * 0.8 + (1 - p) ** 3, rel=1e-5)


def test_siou_hand_values():
    from mgdet.losses import siou

    same = torch.tensor([[10.0, 10.0, 30.0, 50.0]])
    assert float(siou(same, same)[0]) == pytest.approx(1.0, abs=1e-6)  # coinciding centres stay defined
    pred = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    gt = torch.tensor([[4.0, 0.0, 14.0, 10.0]])  # shifted 4 px right: same shape, horizontal offset
    iou = 60 / 140
    # sin(alpha) = |s_ch| / rho = 0 (the x offset is above 45 degrees), angle = cos(-pi/2) = 0; dx = (4/14)^2
    dist = 2 - math.exp(-2 * (4 / 14) ** 2) - math.exp(0.0)
    assert float(siou(pred, gt)[0]) == pytest.approx(iou - 0.5 * dist, abs=1e-5)
    wide = torch.tensor([[0.0, 0.0, 20.0, 10.0]])  # same centre as gt2, twice as wide: only the shape cost
    gt2 = torch.tensor([[5.0, 0.0, 15.0, 10.0]])
    shape = (1 - math.exp(-10 / 20)) ** 4
    assert float(siou(wide, gt2)[0]) == pytest.approx(0.5 - 0.5 * shape, abs=1e-5)


def test_authors_loss_normalisers_and_weights():
    """Classification / #positive cells x 2; regression: quality-weighted over the batch; ignored anchors skip the
    classification loss; the mgdet default is unchanged."""
    from mgdet.losses import (
        LossConfig,
        authors_detection_loss,
        balanced_l1_loss,
        detection_loss,
        siou,
        varifocal_poly_loss,
    )

    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 40.0, 40.0], [0.0, 20.0, 10.0, 30.0]])
    gt = torch.tensor([[[1.0, 1.0, 11.0, 12.0], [18.0, 22.0, 41.0, 39.0]]])
    labels = torch.tensor([[1, 0]])
    cls_gt = torch.tensor([[0, 1, IGNORED]])
    reg_gt = torch.tensor([[0, 1, NEGATIVE]])
    logits = torch.tensor([[[0.1, -0.3], [0.4, 0.2], [3.0, 3.0]]])
    deltas = torch.tensor([[[0.1, 0.0, 0.1, -0.1], [0.0, 0.2, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]])
    soft, quality = torch.tensor([[0.6, 0.9, 0.0]]), torch.tensor([[1.0, 3.0, 0.0]])
    a = Assignment(cls_gt, reg_gt, cls_target=soft, reg_weight=quality)
    out = authors_detection_loss(a, logits, deltas, anchors, gt, labels)
    targets = torch.tensor([[0.0, 0.6], [0.9, 0.0]])  # anchor 0 -> GT 0 (class 1), anchor 1 -> GT 1 (class 0)
    expect_cls = 2.0 * varifocal_poly_loss(logits[0, :2], targets).sum() / 2  # the ignored anchor 2 is skipped
    assert float(out["loss_cls"]) == pytest.approx(float(expect_cls), rel=1e-6)
    w = torch.tensor([0.25, 0.75])
    matched = gt[0]
    from mgdet.boxes import decode, encode

    bl1 = balanced_l1_loss(deltas[0, :2], encode(matched, anchors[:2])).mean(-1)
    s = siou(decode(deltas[0, :2], anchors[:2]), matched)
    assert float(out["loss_reg"]) == pytest.approx(float((w * bl1).sum() + 2 * (w * (1 - s)).sum()), rel=1e-6)
    same = detection_loss(a, logits, deltas, anchors, gt, labels, LossConfig(style="authors"))
    assert torch.equal(same["loss_reg"], out["loss_reg"])
    default = detection_loss(a, logits, deltas, anchors, gt, labels)
    assert not torch.allclose(default["loss_cls"], out["loss_cls"])
    with pytest.raises(ValueError, match="loss style"):
        detection_loss(a, logits, deltas, anchors, gt, labels, LossConfig(style="yolo"))
