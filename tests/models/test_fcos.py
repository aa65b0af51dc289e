"""FCOS point assignment (static rule, L2C, C2L, MG) and the FCOS loss."""

from __future__ import annotations

import pytest
import torch

from mgdet.assign import NEGATIVE, AssignParams, assign, fcos_priors
from mgdet.assign.fcos import centerness, level_ranges
from mgdet.models.fcos import decode_ltrb, fcos_loss, generate_points, giou_loss


def assign_fcos(strategy, points, strides, ranges, boxes, labels, pred_boxes=None, pred_scores=None, sigma=2.0):
    """:func:`mgdet.assign.assign` on FCOS points given as bare tensors."""
    priors = fcos_priors(points, strides, ranges)
    return assign(strategy, priors, boxes, labels, pred_boxes, pred_scores, AssignParams(sigma=sigma))


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _points(size: int = 128):
    strides = (8, 16, 32, 64)
    sizes = [(-(-size // s), -(-size // s)) for s in strides]
    return generate_points(strides, sizes, level_ranges(4))


def _static_reference(points, strides, ranges, boxes, labels, radius=1.5):
    """Loop reference of the original FCOS rule for one image."""
    out = []
    for (px, py), s, (lo, hi) in zip(points.tolist(), strides.tolist(), ranges.tolist()):
        best, best_area = NEGATIVE, float("inf")
        for g, ((x1, y1, x2, y2), lab) in enumerate(zip(boxes.tolist(), labels.tolist())):
            if lab < 0:
                continue
            d = (px - x1, py - y1, x2 - px, y2 - py)
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
            in_c = max(cx - radius * s, x1) < px < min(cx + radius * s, x2)
            in_c &= max(cy - radius * s, y1) < py < min(cy + radius * s, y2)
            area = (x2 - x1) * (y2 - y1)
            if min(d) > 0 and in_c and lo < max(d) <= hi and area < best_area:
                best, best_area = g, area
        out.append(best)
    return out


def _random_gt(gen: torch.Generator, b: int, g: int, size: float = 128.0):
    xy = torch.rand(b, g, 2, generator=gen) * size * 0.7
    wh = torch.rand(b, g, 2, generator=gen) * size * 0.6 + 6
    boxes = torch.cat((xy, (xy + wh).clamp(max=size)), dim=-1)
    labels = torch.randint(0, 3, (b, g), generator=gen)
    labels[:, -1] = -1  # padding
    return boxes, labels


@pytest.mark.parametrize("seed", range(5))
def test_static_rule_matches_loop_reference(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    points, strides, ranges = _points()
    boxes, labels = _random_gt(gen, 2, 5)
    a = assign_fcos("iou", points, strides, ranges, boxes, labels)
    for i in range(2):
        assert a.cls_gt[i].tolist() == _static_reference(points, strides, ranges, boxes[i], labels[i])
    assert torch.equal(a.cls_gt, a.reg_gt)


def _preds(gen: torch.Generator, points, strides, b: int, c: int = 3):
    deltas = torch.randn(b, points.shape[0], 4, generator=gen) * 0.5 + 1.0
    return decode_ltrb(deltas, points, strides), torch.rand(b, points.shape[0], c, generator=gen)


@pytest.mark.parametrize("seed", range(5))
def test_dynamic_strategies_keep_np_and_candidates(seed: int) -> None:
    gen = torch.Generator().manual_seed(100 + seed)
    points, strides, ranges = _points()
    boxes, labels = _random_gt(gen, 3, 4)
    pred_boxes, pred_scores = _preds(gen, points, strides, 3)
    static = assign_fcos("iou", points, strides, ranges, boxes, labels)
    mg = assign_fcos("mutual_guidance", points, strides, ranges, boxes, labels, pred_boxes, pred_scores)
    l2c = assign_fcos("localize_to_classify", points, strides, ranges, boxes, labels, pred_boxes, pred_scores)
    c2l = assign_fcos("classify_to_localize", points, strides, ranges, boxes, labels, pred_boxes, pred_scores)
    assert torch.equal(l2c.reg_gt, static.reg_gt) and torch.equal(c2l.cls_gt, static.cls_gt)
    assert torch.equal(mg.cls_gt, l2c.cls_gt) and torch.equal(mg.reg_gt, c2l.reg_gt)
    for idx in (mg.cls_gt, mg.reg_gt):
        for b in range(3):
            for g in range(4):
                n_static = int((static.cls_gt[b] == g).sum())
                sel = idx[b] == g
                assert int(sel.sum()) <= n_static  # never more than Np
                if sel.any():  # only points inside the GT box
                    p = points[sel]
                    x1, y1, x2, y2 = boxes[b, g].tolist()
                    assert ((p[:, 0] > x1) & (p[:, 0] < x2) & (p[:, 1] > y1) & (p[:, 1] < y2)).all()
            assert (idx[b][labels[b][idx[b].clamp(min=0)] < 0] == NEGATIVE).all() or not (idx[b] >= 0).any()


def test_l2c_picks_best_regressed_points() -> None:
    points, strides, ranges = _points()
    boxes = torch.tensor([[[30.0, 30, 70, 70]]])
    labels = torch.tensor([[1]])
    static = assign_fcos("iou", points, strides, ranges, boxes, labels)
    np_ = int((static.cls_gt == 0).sum())
    pred = torch.zeros(1, points.shape[0], 4)  # all predictions empty ...
    inside = ((points > 30) & (points < 70)).all(-1) & (strides == 8)  # the GT's level
    best = inside.nonzero()[-np_:, 0]  # ... except np_ chosen points predicting the GT exactly
    pred[0, best] = boxes[0, 0]
    a = assign_fcos("localize_to_classify", points, strides, ranges, boxes, labels, pred_boxes=pred)
    assert set(torch.nonzero(a.cls_gt[0] == 0)[:, 0].tolist()) == set(best.tolist())


def test_c2l_amplifies_centerness_with_score() -> None:
    points, strides, ranges = _points()
    boxes = torch.tensor([[[30.0, 30, 70, 70]]])
    labels = torch.tensor([[2]])
    scores = torch.zeros(1, points.shape[0], 3)
    a0 = assign_fcos("classify_to_localize", points, strides, ranges, boxes, labels, pred_scores=scores)
    # with zero scores C2L = top-Np by centerness
    ctr = centerness(torch.cat((points - boxes[0, :, :2], boxes[0, :, 2:] - points), -1))
    inside = ((points > 30) & (points < 70)).all(-1) & (strides == 8)
    np_ = int((a0.reg_gt == 0).sum())
    top = torch.where(inside, ctr, -1.0).topk(np_).indices
    assert set(torch.nonzero(a0.reg_gt[0] == 0)[:, 0].tolist()) == set(top.tolist())
    # a confident off-centre point (still inside the box) enters the regression samples
    off = torch.nonzero(inside & (ctr > 0.2) & (ctr < 0.5))[0, 0]
    scores[0, off, 2] = 0.999
    a1 = assign_fcos("classify_to_localize", points, strides, ranges, boxes, labels, pred_scores=scores, sigma=2.0)
    assert a1.reg_gt[0, off] == 0 and int((a1.reg_gt == 0).sum()) == np_
    with pytest.raises(ValueError):
        assign_fcos("classify_to_localize", points, strides, ranges, boxes, labels, pred_scores=scores, sigma=1.0)


def test_empty_and_padding_only() -> None:
    points, strides, ranges = _points(64)
    for g in (0, 2):
        boxes, labels = torch.zeros(2, g, 4), torch.full((2, g), -1)
        a = assign_fcos("mutual_guidance", points, strides, ranges, boxes, labels,
                        torch.zeros(2, points.shape[0], 4), torch.zeros(2, points.shape[0], 3))  # fmt: skip
        assert (a.cls_gt == NEGATIVE).all() and (a.reg_gt == NEGATIVE).all()


def test_giou_and_loss() -> None:
    b = torch.tensor([[0.0, 0, 10, 10]])
    assert giou_loss(b, b).abs().max() < 1e-6
    assert giou_loss(b, b + 20).item() > 1.0  # disjoint: GIoU < 0
    points, strides, ranges = _points()
    gen = torch.Generator().manual_seed(0)
    boxes, labels = _random_gt(gen, 2, 3)
    a = assign_fcos("iou", points, strides, ranges, boxes, labels)
    n = points.shape[0]
    cls = torch.zeros(2, n, 3, requires_grad=True)
    box = torch.zeros(2, n, 4, requires_grad=True)
    ctr = torch.zeros(2, n, requires_grad=True)
    out = fcos_loss(a, cls, box, ctr, points, strides, boxes, labels)
    total = out["loss_cls"] + out["loss_reg"] + out["loss_ctr"]
    total.backward()
    assert torch.isfinite(total) and out["num_reg_pos"] > 0
    assert box.grad.abs().sum() > 0 and ctr.grad.abs().sum() > 0
