"""The shared pieces of every rule: exact ranking keys, the segmented rank, conflict resolution, priors."""

import torch

from mgdet.anchors import paper_layout
from mgdet.assign import layout_priors
from mgdet.assign.core import centres_inside, ranking_key, resolve_pairs, segment_rank


def test_ranking_key_orders_exactly_with_ties_by_index():
    v = torch.tensor([0.5, 0.25, 0.5, 1e-30, 2e-30, 0.0, 0.25])
    desc = ranking_key(v, descending=True).topk(7).indices.tolist()
    assert desc == [0, 2, 1, 6, 4, 3, 5]
    asc = ranking_key(v, descending=False).topk(7, largest=False).indices.tolist()
    assert asc == [5, 3, 4, 1, 6, 0, 2]
    # neighbouring float32 values stay ordered against the index offset of a large row
    big = torch.full((20000,), 0.5)
    big[-1] = torch.nextafter(torch.tensor(0.5), torch.tensor(1.0))
    assert ranking_key(big, descending=True).topk(2).indices.tolist() == [19999, 0]


def test_segment_rank_is_exact_for_tiny_values_and_ties():
    seg = torch.tensor([0, 0, 0, 0, 2, 2, 5])
    val = torch.tensor([1e-30, 3e-30, 3e-30, 0.5, 0.0, 0.1, 0.7])
    assert segment_rank(seg, val).tolist() == [3, 1, 2, 0, 1, 0, 0]
    empty = segment_rank(torch.zeros(0, dtype=torch.long), torch.zeros(0))
    assert empty.shape == (0,)


def test_resolve_pairs_highest_value_then_lowest_gt():
    slot = torch.tensor([3, 3, 3, 1, 4, 4])
    gt = torch.tensor([2, 0, 1, 1, 1, 0])
    value = torch.tensor([0.7, 0.6, 0.7, 0.2, 0.5, 0.5])
    assert resolve_pairs(slot, gt, value, 6, 3).tolist() == [3, 1, 3, 1, 0, 3]


def test_centres_inside_needs_the_margin():
    centres = torch.tensor([[5.0, 5.0], [0.0, 5.0], [0.005, 5.0], [0.02, 5.0]])
    gt = torch.tensor([[[0.0, 0.0, 10.0, 10.0]]])
    assert centres_inside(centres, gt, 0.01)[0, 0].tolist() == [True, False, False, True]


def test_layout_priors_levels_and_centres():
    p = layout_priors(paper_layout(), 320)
    assert p.num == 12750 and p.level_sizes == (9600, 2400, 600, 150) and p.per_location == 6
    assert torch.equal(p.centres, (p.boxes[:, :2] + p.boxes[:, 2:]) / 2)
    assert p.levels.bincount().tolist() == list(p.level_sizes)
    assert p.strides[[0, 9600, 12000, 12600]].tolist() == [8.0, 16.0, 32.0, 64.0]
    assert [s.start for s in p.level_slices()] == [0, 9600, 12000, 12600]
