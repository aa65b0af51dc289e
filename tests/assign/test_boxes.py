import math

import pytest
import torch

from mgdet import boxes as B


def test_conversions_roundtrip():
    xyxy = torch.tensor([[0.0, 10.0, 40.0, 30.0]])
    cxcywh = B.xyxy_to_cxcywh(xyxy)
    assert cxcywh.tolist() == [[20.0, 20.0, 40.0, 20.0]]
    assert torch.equal(B.cxcywh_to_xyxy(cxcywh), xyxy)


def test_box_iou_hand_values():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    # overlap 5x10 = 50, union 150 -> 1/3; disjoint -> 0; identical -> 1
    iou = B.box_iou(a, b)
    assert iou.shape == (1, 3)
    assert torch.allclose(iou, torch.tensor([[1 / 3, 0.0, 1.0]]))


def test_box_iou_batched_matches_unbatched():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(3, 5, 2, generator=g) * 50
    boxes1 = torch.cat([xy, xy + torch.rand(3, 5, 2, generator=g) * 30 + 1], -1)
    xy = torch.rand(3, 7, 2, generator=g) * 50
    boxes2 = torch.cat([xy, xy + torch.rand(3, 7, 2, generator=g) * 30 + 1], -1)
    batched = B.box_iou(boxes1, boxes2)
    assert batched.shape == (3, 5, 7)
    for i in range(3):
        assert torch.allclose(batched[i], B.box_iou(boxes1[i], boxes2[i]))
    assert torch.allclose(B.elementwise_iou(boxes1, boxes1), torch.ones(3, 5))


def test_degenerate_boxes_give_zero_not_nan():
    a = torch.tensor([[5.0, 5.0, 5.0, 5.0], [3.0, 3.0, 1.0, 1.0]])  # empty and inverted
    iou = B.box_iou(a, a)
    assert torch.isfinite(iou).all() and (iou == 0).all()
    assert B.box_area(a).tolist() == [0.0, 0.0]
    assert B.valid_boxes(a).tolist() == [False, False]


def test_encode_decode_roundtrip_and_hand_value():
    anchors = torch.tensor([[0.0, 0.0, 20.0, 10.0]])  # c=(10,5) w=20 h=10
    boxes = torch.tensor([[2.0, 1.0, 22.0, 21.0]])  # c=(12,11) w=20 h=20
    d = B.encode(boxes, anchors)
    # dx = 2/(0.1*20) = 1, dy = 6/(0.1*10) = 6, dw = log(1)/0.2 = 0, dh = log(2)/0.2
    assert torch.allclose(d, torch.tensor([[1.0, 6.0, 0.0, math.log(2) / 0.2]]))
    assert torch.allclose(B.decode(d, anchors), boxes, atol=1e-5)


def test_decode_clamps_huge_deltas():
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    out = B.decode(torch.tensor([[0.0, 0.0, 1e4, 1e4]]), anchors)
    assert torch.isfinite(out).all()


def test_clip_boxes():
    out = B.clip_boxes(torch.tensor([[-5.0, -1.0, 50.0, 20.0]]), height=10, width=40)
    assert out.tolist() == [[0.0, 0.0, 40.0, 10.0]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_iou_dtype_preserved(dtype):
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0]], dtype=dtype)
    assert B.box_iou(a, a).dtype == dtype
