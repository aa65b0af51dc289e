"""Windows of the anchor grid (mgdet.assign.sparse): every overlapping (GT, anchor) pair once, with the IoU that
box_iou gives bit for bit, and the packed-key reservation that consumes them."""

from __future__ import annotations

import pytest
import torch

from mgdet.anchors import paper_layout, retinanet_layout
from mgdet.assign import assign, core, layout_priors, single_level_priors, sparse
from mgdet.assign.core import Reservation, pack_keys, unpack_keys
from mgdet.boxes import box_iou


def _gt(seed: int, b: int, g: int, size: int, lo: int, hi: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.randint(-4, size - 4, (b, g, 2), generator=gen).float()  # integer corners: touching edges, ties
    wh = torch.randint(lo, hi, (b, g, 2), generator=gen).float()
    valid = torch.rand(b, g, generator=gen) > 0.1
    return torch.where(valid[..., None], torch.cat([xy, xy + wh], -1), 0.0), valid


@pytest.mark.parametrize("layout", [paper_layout(base_size=9.6), retinanet_layout()])
@pytest.mark.parametrize("budget", [1 << 20, 3000])
def test_windows_hold_every_overlapping_pair_once_with_box_iou(layout, budget):
    priors = layout_priors(layout, 128)
    gt, valid = _gt(0, 3, 60, 128, 1, 40)
    blocks = sparse.anchor_blocks(
        priors.boxes, priors.grid_hw, priors.per_location, gt, valid, budget=budget, max_fraction=1.0
    )
    assert blocks is not None
    dense = box_iou(gt, priors.boxes) * valid[..., None]  # [B, G, A]
    seen = torch.zeros_like(dense)
    count = torch.zeros(dense.shape, dtype=torch.long)
    a = priors.num
    n_blocks = 0
    for blk in blocks:
        n_blocks += 1
        live = blk.iou > 0
        slot = blk.slot[live]
        gt_flat = blk.gt.expand_as(blk.slot)[live]
        image, prior = slot // a, slot % a
        assert torch.equal(image, gt_flat // gt.shape[1])  # a GT meets the anchors of its own image
        seen[image, gt_flat % gt.shape[1], prior] = blk.iou[live]
        count[image, gt_flat % gt.shape[1], prior] += 1
    assert torch.equal(seen, dense)  # every non-zero IoU, bit for bit
    assert int(count.max()) == 1  # each pair once
    assert (n_blocks > len(priors.grid_hw)) == (budget < 1 << 20)  # a small budget: several blocks per level


def test_not_a_grid_gives_none():
    priors = layout_priors(paper_layout(base_size=9.6), 64)
    gt, valid = _gt(1, 2, 10, 64, 2, 20)
    boxes = priors.boxes.clone()
    boxes[5, 0] += 0.5  # one anchor off the grid
    assert sparse.anchor_blocks(boxes, priors.grid_hw, priors.per_location, gt, valid) is None
    assert single_level_priors(priors.boxes).grid_hw is None  # bare anchors: the dense path


def test_pack_keys_order_is_value_then_lowest_index():
    value = torch.tensor([0.5, 0.5, 0.25, 1.0, 1e-30])
    index = torch.tensor([7, 3, 1, 9, 0])
    keys = pack_keys(value, index)
    assert int(keys.argmax()) == 3
    assert keys[1] > keys[0] > keys[2] > keys[4] > 0  # ties: the lower index is the larger key
    v, i = unpack_keys(torch.cat([keys, torch.zeros(1, dtype=torch.long)]))
    assert torch.equal(v[:5], value) and torch.equal(i[:5], index)
    assert v[5] == 0 and i[5] == 0  # an empty key


def test_block_reservation_equals_the_dense_reservation():
    priors = layout_priors(paper_layout(base_size=9.6), 96)
    gt, valid = _gt(2, 2, 80, 96, 1, 30)
    b, g, a = 2, 80, priors.num
    dense = Reservation(b, g, a, gt.device)
    dense.add(slice(0, g), box_iou(gt, priors.boxes))
    windows = Reservation(b, g, a, gt.device)
    for blk in sparse.anchor_blocks(
        priors.boxes, priors.grid_hw, priors.per_location, gt, valid, budget=2000, max_fraction=1.0
    ):
        windows.add_block(blk.gt, blk.local, blk.slot, blk.iou)
    for d, w in zip(dense.result(valid), windows.result(valid)):
        assert torch.equal(d, w)


@pytest.mark.parametrize(
    "strategy", ["iou", "localize_to_classify", "classify_to_localize", "mutual_guidance", "mutual_guidance_dynamic"]
)
def test_windows_and_dense_paths_give_the_same_assignment(strategy, monkeypatch):
    priors = layout_priors(paper_layout(base_size=9.6), 128)
    gt, valid = _gt(3, 2, 200, 128, 2, 24)
    labels = torch.where(valid, torch.randint(0, 4, valid.shape, generator=torch.Generator().manual_seed(3)), -1)
    gen = torch.Generator().manual_seed(4)
    scores = torch.rand(2, priors.num, 4, generator=gen)
    pred = priors.boxes[None] + (torch.rand(2, priors.num, 4, generator=gen) - 0.5) * 6
    monkeypatch.setattr(core, "CHUNK_ELEMENTS", 1 << 40)  # one dense chunk
    dense = assign(strategy, priors, gt, labels, pred, scores)
    monkeypatch.setattr(core, "CHUNK_ELEMENTS", 1 << 16)
    monkeypatch.setattr(sparse, "BLOCK_BUDGET", 5000)
    monkeypatch.setattr(sparse, "_MAX_PRED_FRACTION", 1.0)  # the windows for IoU_regressed too
    monkeypatch.setattr(sparse, "_MAX_ANCHOR_FRACTION", 1.0)
    made = []
    block = sparse._block
    monkeypatch.setattr(sparse, "_block", lambda *args: made.append(1) or block(*args))
    windows = assign(strategy, priors, gt, labels, pred, scores)
    assert len(made) > 4  # the windows path was taken
    assert torch.equal(dense.cls_gt, windows.cls_gt) and torch.equal(dense.reg_gt, windows.reg_gt)
    for soft in ("cls_target", "reg_weight"):  # the later rule's qualities, bit for bit
        if getattr(dense, soft) is not None:
            assert torch.equal(getattr(dense, soft), getattr(windows, soft))
    assert (dense.cls_gt >= 0).sum() > 100
