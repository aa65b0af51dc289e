import math

import torch

from mgdet.anchors import cell_anchors, feature_sizes, generate_anchors, paper_layout, retinanet_layout
from mgdet.boxes import xyxy_to_cxcywh


def test_paper_layout_count_at_320():
    layout = paper_layout()
    assert layout.num_anchors == 6
    anchors = generate_anchors(layout, 320)
    # (40^2 + 20^2 + 10^2 + 5^2) * 6
    assert anchors.shape == (12750, 4)


def test_paper_layout_sizes_and_order():
    anchors = generate_anchors(paper_layout(), 320)
    c = xyxy_to_cxcywh(anchors)
    # first location of level 0: centre (4, 4); sizes 24 and 24*sqrt(2); ratios 1, 2, 1/2 (w/h)
    first = c[:6]
    assert torch.allclose(first[:, :2], torch.full((6, 2), 4.0))
    s2 = 24 * math.sqrt(2)
    expected_wh = [
        (24, 24),
        (24 * math.sqrt(2), 24 / math.sqrt(2)),
        (24 / math.sqrt(2), 24 * math.sqrt(2)),
        (s2, s2),
        (s2 * math.sqrt(2), s2 / math.sqrt(2)),
        (s2 / math.sqrt(2), s2 * math.sqrt(2)),
    ]
    assert torch.allclose(first[:, 2:], torch.tensor(expected_wh, dtype=torch.float32), atol=1e-4)
    # second location of level 0 is one stride to the right (row-major, x fastest)
    assert torch.allclose(c[6, :2], torch.tensor([12.0, 4.0]))
    # first anchor of level 1 (stride 16, size 48) starts after 40*40*6 anchors
    assert torch.allclose(c[9600], torch.tensor([8.0, 8.0, 48.0, 48.0]))
    # last anchor of last level: stride 64, cell (4, 4) -> centre 288
    assert torch.allclose(c[-1, :2], torch.tensor([288.0, 288.0]))


def test_retinanet_layout():
    layout = retinanet_layout()
    assert layout.num_anchors == 9
    anchors = generate_anchors(layout, 320)
    assert anchors.shape == ((1600 + 400 + 100 + 25 + 9) * 9, 4)
    base = cell_anchors(layout.sizes[0], layout.ratios)
    wh = base[:, 2:] - base[:, :2]
    assert torch.allclose((wh[:, 0] * wh[:, 1]).sqrt()[:3], torch.full((3,), 32.0), atol=1e-3)


def test_feature_sizes_non_multiple():
    assert feature_sizes(160, (8, 16, 32, 64)) == [(20, 20), (10, 10), (5, 5), (3, 3)]
    assert feature_sizes((96, 128), (8, 16)) == [(12, 16), (6, 8)]


def test_explicit_sizes():
    anchors = generate_anchors(paper_layout(), 64, sizes_hw=[(8, 8), (4, 4), (2, 2), (1, 1)])
    assert anchors.shape == ((64 + 16 + 4 + 1) * 6, 4)
