"""NMS equals a brute-force greedy reference."""

from __future__ import annotations

import pytest
import torch

from mgdet.nms import batched_nms, nms


def _iou(a: list[float], b: list[float]) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def greedy_reference(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor | None, thr: float):
    order = sorted(range(len(scores)), key=lambda i: -float(scores[i]))
    bx = boxes.double().tolist()
    keep: list[int] = []
    for i in order:
        if all((labels is not None and int(labels[i]) != int(labels[j])) or _iou(bx[i], bx[j]) <= thr for j in keep):
            keep.append(i)
    return keep


def random_boxes(n: int, gen: torch.Generator, size: float = 100.0) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=gen) * size
    wh = torch.rand(n, 2, generator=gen) * size / 3 + 1
    return torch.cat((xy, xy + wh), dim=1)


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_greedy(seed: int, thr: float) -> None:
    gen = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 200, (1,), generator=gen))
    boxes = random_boxes(n, gen)
    scores = torch.randperm(n, generator=gen).float() / n  # distinct: no ties
    keep = nms(boxes, scores, thr)
    assert keep.tolist() == greedy_reference(boxes, scores, None, thr)


@pytest.mark.parametrize("seed", range(20))
def test_batched_nms_matches_per_class_greedy(seed: int) -> None:
    gen = torch.Generator().manual_seed(1000 + seed)
    n = int(torch.randint(1, 300, (1,), generator=gen))
    boxes = random_boxes(n, gen, size=60.0)
    scores = torch.randperm(n, generator=gen).float() / n
    labels = torch.randint(0, 4, (n,), generator=gen)
    keep = batched_nms(boxes, scores, labels, 0.5)
    assert keep.tolist() == greedy_reference(boxes, scores, labels, 0.5)
    assert torch.all(scores[keep][1:] <= scores[keep][:-1])  # score-descending


def test_batched_nms_large_coordinates_and_identical_boxes() -> None:
    boxes = torch.tensor([[1e5, 1e5, 1e5 + 10, 1e5 + 10]] * 3)
    scores = torch.tensor([0.9, 0.8, 0.7])
    labels = torch.tensor([0, 1, 0])
    assert batched_nms(boxes, scores, labels, 0.5).tolist() == [0, 1]
    assert nms(boxes, scores, 0.5).tolist() == [0]


def test_nms_empty() -> None:
    keep = batched_nms(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert keep.shape == (0,) and keep.dtype == torch.long
