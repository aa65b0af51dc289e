"""Crowded images (issue 24): the rules build their GT x prior matrices a chunk of GTs at a time; the result is
identical to the one-chunk (dense) computation on random crowded batches with exact ties, for every rule on
anchors and on FCOS points."""

from __future__ import annotations

import pytest
import torch

from mgdet.anchors import paper_layout
from mgdet.assign import STRATEGIES, assign, core, layout_priors, point_priors
from mgdet.assign.fcos import level_ranges
from mgdet.models.fcos import generate_points


def _crowded(seed: int, num_priors: int, b: int = 2, g: int = 150, size: int = 128, classes: int = 5):
    gen = torch.Generator().manual_seed(seed)
    xy = torch.randint(0, size - 12, (b, g, 2), generator=gen).float()  # integer corners: exact IoU ties
    wh = torch.randint(3, 24, (b, g, 2), generator=gen).float()
    gt = torch.cat([xy, (xy + wh).clamp(max=size)], -1)
    gt[:, 1] = gt[:, 0]  # a duplicated GT: every tie between GTs is exercised
    labels = torch.randint(0, classes, (b, g), generator=gen)
    labels[1, -20:] = -1  # padding
    pred_scores = torch.rand(b, num_priors, classes, generator=gen)
    return gt, labels, pred_scores, gen


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", ["anchors", "points"])
def test_chunked_equals_dense_on_crowded_batches(seed, kind, monkeypatch):
    if kind == "anchors":
        priors = layout_priors(paper_layout(base_size=9.6), 128)
        centres = priors.centres
    else:
        sizes = [(16, 16), (8, 8), (4, 4), (2, 2)]
        pts, st, rg = generate_points((8, 16, 32, 64), sizes, level_ranges(4))
        priors = point_priors(pts, st, rg, [h * w for h, w in sizes])
        centres = pts
    gt, labels, scores, gen = _crowded(seed, priors.num)
    jitter = (torch.rand(2, priors.num, 4, generator=gen) - 0.5) * 6
    pred = torch.cat([centres, centres], -1) + torch.tensor([-6.0, -6.0, 6.0, 6.0]) + jitter
    for strategy in STRATEGIES:
        monkeypatch.setattr(core, "CHUNK_ELEMENTS", 1 << 40)  # one chunk: the dense computation
        dense = assign(strategy, priors, gt, labels, pred, scores)
        monkeypatch.setattr(core, "CHUNK_ELEMENTS", 2 * priors.num * 7)  # 7 GTs per chunk, 22 chunks
        assert len(core.gt_chunks(2, gt.shape[1], priors.num)) == 22
        chunked = assign(strategy, priors, gt, labels, pred, scores)
        assert torch.equal(dense.cls_gt, chunked.cls_gt), strategy
        assert torch.equal(dense.reg_gt, chunked.reg_gt), strategy
        if dense.cls_target is not None:
            assert torch.equal(dense.cls_target, chunked.cls_target), strategy
        assert (dense.cls_gt >= 0).sum() > 50  # a crowded batch: many positives
