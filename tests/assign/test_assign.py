"""Assignment tests: hand-built situations with known answers, plus an independent per-image reference."""

import pytest
import torch

from mgdet.assign import IGNORED, NEGATIVE, PAPER_STRATEGIES, amplified_iou, assign, reserve, reserved_matrix
from mgdet.assign.reference import reference_paper
from mgdet.boxes import box_iou

GT = torch.tensor([[[0.0, 0.0, 100.0, 100.0]]])  # [1, 1, 4]
LABELS = torch.tensor([[0]])


def strips(ious):
    """Boxes [0, 0, 100, 100*v] inside GT: IoU with GT is exactly v."""
    return torch.tensor([[0.0, 0.0, 100.0, 100.0 * v] for v in ious])


# Fig. 2 of the paper: 13 anchors A..M around one object; Np = 6 (>= 0.5) and Ni = 3 (in [0.4, 0.5)).
IOU_ANCHOR = [0.9, 0.8, 0.75, 0.7, 0.6, 0.55, 0.48, 0.45, 0.42, 0.3, 0.2, 0.1, 0.05]
# Regressed boxes: anchor 0 (IoU_anchor 0.9) regresses badly (0.10), anchor 9 (IoU_anchor 0.3) very well.
IOU_REGRESSED = [0.10, 0.85, 0.80, 0.78, 0.70, 0.65, 0.60, 0.45, 0.44, 0.95, 0.43, 0.2, 0.05]
ANCHORS = strips(IOU_ANCHOR)
PRED = strips(IOU_REGRESSED)[None]  # [1, 13, 4]


def labels_of(t):
    return t[0].tolist()


def test_static_fig2():
    a = assign("iou", ANCHORS, GT, LABELS)
    # >= 0.5 positive (GT 0), [0.4, 0.5) ignored, < 0.4 negative
    assert labels_of(a.cls_gt) == [0] * 6 + [IGNORED] * 3 + [NEGATIVE] * 4
    assert labels_of(a.reg_gt) == [0] * 6 + [NEGATIVE] * 7


def test_localize_to_classify_fig2():
    a = assign("localize_to_classify", ANCHORS, GT, LABELS, pred_boxes=PRED)
    # sorted by IoU_regressed: 9 (.95) 1 (.85) 2 (.80) 3 (.78) 4 (.70) 5 (.65) | 6 (.60) 7 (.45) 8 (.44) | rest
    expected = [NEGATIVE] * 13
    for i in (9, 1, 2, 3, 4, 5):
        expected[i] = 0
    for i in (6, 7, 8):
        expected[i] = IGNORED
    assert labels_of(a.cls_gt) == expected
    assert (a.cls_gt >= 0).sum() == 6 and (a.cls_gt == IGNORED).sum() == 3
    assert a.cls_gt[0, 9] == 0  # well-regressed low-IoU anchor promoted
    assert a.cls_gt[0, 0] == NEGATIVE  # poorly regressed high-IoU anchor demoted
    # anchor 6 has IoU_regressed 0.60 > 0.5 but is only ignored: thresholds are dynamic (top-Np)
    assert a.cls_gt[0, 6] == IGNORED
    # regression stays static
    assert labels_of(a.reg_gt) == [0] * 6 + [NEGATIVE] * 7


def test_classify_to_localize_zero_scores_is_static():
    scores = torch.zeros(1, 13, 3)
    a = assign("classify_to_localize", ANCHORS, GT, LABELS, pred_scores=scores)
    static = assign("iou", ANCHORS, GT, LABELS)
    assert torch.equal(a.reg_gt, static.reg_gt)
    assert torch.equal(a.cls_gt, static.cls_gt)


def test_classify_to_localize_promotes_confident_anchor():
    scores = torch.zeros(1, 13, 3)
    scores[0, 6, 0] = 1.0  # anchor 6: IoU 0.48, p = 1 -> 0.48 ** 0.5 = 0.6928 (sigma = 2)
    scores[0, 7, 1] = 1.0  # a confident score for another class does not count
    a = assign("classify_to_localize", ANCHORS, GT, LABELS, pred_scores=scores)
    # amplified: .9 .8 .75 .7 .6 .55 .6928 .45 ... -> top-6 = 0,1,2,3,6,4 ; anchor 5 (.55) drops out
    expected = [0, 0, 0, 0, 0, NEGATIVE, 0] + [NEGATIVE] * 6
    assert labels_of(a.reg_gt) == expected


def test_mutual_guidance_combines_both():
    scores = torch.zeros(1, 13, 1)
    scores[0, 6, 0] = 1.0
    a = assign("mutual_guidance", ANCHORS, GT, LABELS, pred_boxes=PRED, pred_scores=scores)
    l2c = assign("localize_to_classify", ANCHORS, GT, LABELS, pred_boxes=PRED)
    c2l = assign("classify_to_localize", ANCHORS, GT, LABELS, pred_scores=scores)
    assert torch.equal(a.cls_gt, l2c.cls_gt)
    assert torch.equal(a.reg_gt, c2l.reg_gt)
    # cls positives {9,1,2,3,4,5}, reg samples {0,1,2,3,4,6}: they disagree on 0 and 6 (reg only), 9 and 5
    # (cls only)
    assert a.reg_gt[0, 0] == 0 and a.cls_gt[0, 0] == NEGATIVE
    assert a.cls_gt[0, 9] == 0 and a.reg_gt[0, 9] == NEGATIVE
    assert float(a.disagreement()) == pytest.approx(4 / 13)


def test_amplified_iou_properties():
    iou = torch.linspace(0, 1, 101)
    for p in (0.0, 0.25, 0.5, 0.75, 1.0):
        amp = amplified_iou(iou, torch.full_like(iou, p), sigma=2.0)
        assert (amp >= iou - 1e-7).all()
    assert torch.equal(amplified_iou(iou, torch.zeros_like(iou), 2.0), iou)
    # sigma = 2, p = 1: square root
    assert amplified_iou(torch.tensor(0.25), torch.tensor(1.0), 2.0).item() == pytest.approx(0.5)


def test_reservation_two_gts():
    # GT1 = [0,0,10,10], GT2 = [5,0,15,10]
    gts = torch.tensor([[[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0]]])
    labels = torch.tensor([[0, 1]])
    anchors = torch.tensor(
        [
            [3.0, 0.0, 13.0, 10.0],  # X: IoU 70/130 = .538 with GT1, 80/120 = .667 with GT2 -> GT2
            [0.0, 0.0, 10.0, 10.0],  # Y: IoU 1 with GT1, 50/150 = .333 with GT2 -> GT1
            [10.0, 0.0, 20.0, 10.0],  # Z: IoU 0 with GT1, .333 with GT2 -> negative
        ]
    )
    a = assign("iou", anchors, gts, labels)
    assert labels_of(a.cls_gt) == [1, 0, NEGATIVE]
    reserved = reserved_matrix(*reserve(box_iou(gts, anchors[None]), labels >= 0), num_gt=2)
    # best anchors forced to 1.0 (X for GT2, Y for GT1); X removed from GT1's candidates
    assert torch.allclose(reserved[0], torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1 / 3]]))


def test_forced_best_anchor_for_low_iou_gt():
    gts = torch.tensor([[[0.0, 0.0, 4.0, 4.0]]])  # tiny: best IoU 16/100 = .16 < neg_iou
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    a = assign("iou", anchors, gts, torch.tensor([[2]]))
    assert labels_of(a.cls_gt) == [0, NEGATIVE]


def test_topk_larger_than_candidates_never_takes_zero_entries():
    # GT0 has Np = 3 (IoU .9 .8 .7); GT1 owns two far-away anchors. Predictions of GT0's anchors all
    # miss GT0 except two, so L2C must give GT0 exactly 2 positives and never touch GT1's anchors.
    gt0 = [0.0, 0.0, 100.0, 100.0]
    gt1 = [500.0, 500.0, 600.0, 600.0]
    gts = torch.tensor([[gt0, gt1]])
    labels = torch.tensor([[0, 1]])
    anchors = torch.cat([strips([0.9, 0.8, 0.7]), torch.tensor([gt1, [500.0, 500.0, 600.0, 560.0]])])
    far = [1000.0, 1000.0, 1010.0, 1010.0]
    pred = torch.tensor([[[0.0, 0.0, 100.0, 60.0], far, [0.0, 0.0, 100.0, 30.0], gt1, [500.0, 500.0, 600.0, 550.0]]])
    a = assign("localize_to_classify", anchors, gts, labels, pred_boxes=pred)
    assert labels_of(a.cls_gt) == [0, NEGATIVE, 0, 1, 1]


def test_padding_and_empty_images():
    gts = torch.zeros(3, 2, 4)
    labels = torch.full((3, 2), -1)
    gts[1, 0] = torch.tensor([0.0, 0.0, 100.0, 100.0])
    labels[1, 0] = 4
    preds = strips(IOU_REGRESSED)[None].expand(3, -1, -1)
    scores = torch.rand(3, 13, 5, generator=torch.Generator().manual_seed(0))
    for strategy in PAPER_STRATEGIES:
        a = assign(strategy, ANCHORS, gts, labels, pred_boxes=preds, pred_scores=scores)
        assert (a.cls_gt[0] == NEGATIVE).all() and (a.cls_gt[2] == NEGATIVE).all()
        assert (a.reg_gt[0] == NEGATIVE).all() and (a.reg_gt[2] == NEGATIVE).all()
        assert (a.cls_gt[1] >= 0).sum() == 6
    # zero GT columns at all
    a = assign(
        "mutual_guidance",
        ANCHORS,
        torch.zeros(2, 0, 4),
        torch.zeros(2, 0, dtype=torch.long),
        pred_boxes=preds[:2],
        pred_scores=scores[:2],
    )
    assert (a.cls_gt == NEGATIVE).all() and (a.reg_gt == NEGATIVE).all()


def test_validation_messages():
    with pytest.raises(ValueError, match="unknown assignment strategy"):
        assign("nope", ANCHORS, GT, LABELS)
    with pytest.raises(ValueError, match="needs pred_boxes"):
        assign("localize_to_classify", ANCHORS, GT, LABELS)
    with pytest.raises(ValueError, match="needs pred_scores"):
        assign("mutual_guidance", ANCHORS, GT, LABELS, pred_boxes=PRED)
    with pytest.raises(ValueError, match="sigma must be > 1"):
        assign("classify_to_localize", ANCHORS, GT, LABELS, pred_scores=torch.zeros(1, 13, 1), sigma=1.0)
    with pytest.raises(ValueError, match=r"gt_boxes must be \[B, G, 4\]"):
        assign("iou", ANCHORS, GT[0], LABELS)
    with pytest.raises(ValueError, match="gt_labels must be"):
        assign("iou", ANCHORS, GT, torch.tensor([0]))
    with pytest.raises(ValueError, match="pred_boxes must be"):
        assign("localize_to_classify", ANCHORS, GT, LABELS, pred_boxes=PRED[:, :5])


# ---------------------------------------------------------------------------------------------------
# Independent reference: per image, per GT, plain Python lists (no shared helper with mgdet.assign).
def _ref_reserved(mat, gts, num_a):
    """mat: dict g -> list over anchors. Force each GT's best anchor to 1, keep each anchor for its best GT."""
    m = {g: list(mat[g]) for g in gts}
    for g in gts:
        best = max(range(num_a), key=lambda i, g=g: (m[g][i], -i))
        m[g][best] = 1.0
    owner = {}
    for i in range(num_a):
        bestg = None
        for g in gts:  # first GT wins ties
            if bestg is None or m[g][i] > m[bestg][i]:
                bestg = g
        owner[i] = bestg
    return {g: [m[g][i] if owner[i] == g else 0.0 for i in range(num_a)] for g in gts}


def _ref_ranked(vals):
    order = sorted(range(len(vals)), key=lambda i: -vals[i])
    return [i for i in order if vals[i] > 0]


def _reference(strategy, anchors, gt_boxes, gt_labels, pred_boxes, pred_scores, pos=0.5, neg=0.4, sigma=2.0):
    out_cls, out_reg = [], []
    num_a = anchors.shape[0]
    for b in range(gt_boxes.shape[0]):
        gts = [g for g in range(gt_boxes.shape[1]) if gt_labels[b, g] >= 0]
        iou_a = {g: box_iou(gt_boxes[b, g][None], anchors)[0].tolist() for g in gts}
        st = _ref_reserved(iou_a, gts, num_a)
        cls = [NEGATIVE] * num_a
        for g in gts:
            for i in range(num_a):
                if st[g][i] >= pos:
                    cls[i] = g
                elif st[g][i] >= neg:
                    cls[i] = IGNORED
        reg = [c if c >= 0 else NEGATIVE for c in cls]
        np_ = {g: sum(v >= pos for v in st[g]) for g in gts}
        ni_ = {g: sum(neg <= v < pos for v in st[g]) for g in gts}
        if strategy in ("localize_to_classify", "mutual_guidance"):
            iou_r = {g: box_iou(gt_boxes[b, g][None], pred_boxes[b])[0].tolist() for g in gts}
            rr = _ref_reserved(iou_r, gts, num_a)
            cls = [NEGATIVE] * num_a
            for g in gts:
                order = _ref_ranked(rr[g])
                for i in order[np_[g] : np_[g] + ni_[g]]:
                    cls[i] = IGNORED
                for i in order[: np_[g]]:
                    cls[i] = g
        if strategy in ("classify_to_localize", "mutual_guidance"):
            amp = {
                g: [
                    max(0.0, iou_a[g][i]) ** ((sigma - float(pred_scores[b, i, gt_labels[b, g]])) / sigma)
                    for i in range(num_a)
                ]
                for g in gts
            }
            ra = _ref_reserved(amp, gts, num_a)
            reg = [NEGATIVE] * num_a
            for g in gts:
                for i in _ref_ranked(ra[g])[: np_[g]]:
                    reg[i] = g
        out_cls.append(cls)
        out_reg.append(reg)
    return torch.tensor(out_cls), torch.tensor(out_reg)


def _random_batch(seed):
    g = torch.Generator().manual_seed(seed)
    num_b, num_g, num_a, num_c = 3, 4, 60, 3
    # float64 and continuous random values: no exact ties, so ordering is unambiguous
    xy = torch.rand(num_a, 2, generator=g, dtype=torch.float64) * 80
    anchors = torch.cat([xy, xy + 8 + torch.rand(num_a, 2, generator=g, dtype=torch.float64) * 30], -1)
    xy = torch.rand(num_b, num_g, 2, generator=g, dtype=torch.float64) * 70
    gt_boxes = torch.cat([xy, xy + 10 + torch.rand(num_b, num_g, 2, generator=g, dtype=torch.float64) * 30], -1)
    gt_labels = torch.randint(0, num_c, (num_b, num_g), generator=g)
    gt_labels[0, 3] = -1  # padding
    gt_labels[2] = -1  # an empty image
    jitter = (torch.rand(num_b, num_a, 4, generator=g, dtype=torch.float64) - 0.5) * 12
    pred_boxes = anchors[None] + jitter
    pred_scores = torch.rand(num_b, num_a, num_c, generator=g, dtype=torch.float64)
    return anchors, gt_boxes, gt_labels, pred_boxes, pred_scores


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("strategy", PAPER_STRATEGIES)
def test_batched_equals_per_image_reference(strategy, seed):
    batch = _random_batch(seed)
    got = assign(strategy, *batch)
    exp_cls, exp_reg = _reference(strategy, *batch)
    assert torch.equal(got.cls_gt, exp_cls)
    assert torch.equal(got.reg_gt, exp_reg)


@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("strategy", PAPER_STRATEGIES)
def test_shared_reference_module_agrees(strategy, seed):
    """mgdet.assign.reference (the loop the benchmark times and checks against) gives the same labels."""
    batch = _random_batch(seed)
    got = reference_paper(strategy, *batch)
    exp_cls, exp_reg = _reference(strategy, *batch)
    assert torch.equal(got.cls_gt, exp_cls) and torch.equal(got.reg_gt, exp_reg)


def test_at_initialisation_strategies_match_static():
    """Box head ~0 and class prior 0.01: regressed boxes = anchors and tiny scores -> nearly static labels."""
    g = torch.Generator().manual_seed(0)
    from mgdet.anchors import generate_anchors, paper_layout

    anchors = generate_anchors(paper_layout(), 320)
    xy = torch.rand(2, 5, 2, generator=g) * 200
    gt_boxes = torch.cat([xy, xy + 30 + torch.rand(2, 5, 2, generator=g) * 90], -1)
    gt_labels = torch.randint(0, 20, (2, 5), generator=g)
    pred = anchors[None].expand(2, -1, -1).clone()
    scores = torch.full((2, anchors.shape[0], 20), 0.01)
    static = assign("iou", anchors, gt_boxes, gt_labels)
    mg = assign("mutual_guidance", anchors, gt_boxes, gt_labels, pred, scores)
    agree_cls = ((static.cls_gt >= 0) == (mg.cls_gt >= 0)).float().mean()
    agree_reg = ((static.reg_gt >= 0) == (mg.reg_gt >= 0)).float().mean()
    assert agree_cls > 0.999 and agree_reg > 0.999
    assert (mg.cls_gt >= 0).sum() == (static.cls_gt >= 0).sum()
