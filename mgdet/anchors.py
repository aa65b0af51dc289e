"""Anchor generation per feature level.

Order (fixed, matched by every head's flattening): level by level (stride ascending), inside a level
row-major over locations (y, then x), inside a location the anchors of :func:`cell_anchors` in order.
A head output ``[B, K*C, H, W]`` is flattened as ``permute(0, 2, 3, 1).reshape(B, H*W*K, C)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from mgdet.catalog import DEFAULT_INPUT_SIZE


@dataclass(frozen=True)
class AnchorLayout:
    """Anchor shapes of every level: ``sizes[l]`` (pixels, square-equivalent) x ``ratios`` (w / h)."""

    strides: tuple[int, ...]
    sizes: tuple[tuple[float, ...], ...]
    ratios: tuple[float, ...]

    @property
    def num_anchors(self) -> int:
        """Anchors per location (the same on every level)."""
        return len(self.sizes[0]) * len(self.ratios)


#: Smallest anchor side of the paper's layout at its 320 px input; scale it with the input size.
PAPER_ANCHOR_BASE = 24.0
PAPER_INPUT_SIZE = DEFAULT_INPUT_SIZE


def paper_layout(strides: Sequence[int] = (8, 16, 32, 64), base_size: float = PAPER_ANCHOR_BASE) -> AnchorLayout:
    """The authors' layout for FSSD / RetinaNet / RFBNet: on level k sizes 24*2^k and 24*2^k*sqrt(2),
    ratios 1, 2, 1/2 -> 6 anchors per location; 12,750 anchors at 320x320 (40^2+20^2+10^2+5^2 cells)."""
    sizes = tuple((base_size * 2**k, base_size * 2**k * math.sqrt(2)) for k in range(len(strides)))
    return AnchorLayout(tuple(strides), sizes, (1.0, 2.0, 0.5))


def retinanet_layout(strides: Sequence[int] = (8, 16, 32, 64, 128)) -> AnchorLayout:
    """Canonical RetinaNet (Lin et al.): P3-P7, size 4*stride x scales 2^0, 2^(1/3), 2^(2/3), ratios 1/2, 1, 2."""
    sizes = tuple(tuple(4 * s * 2 ** (i / 3) for i in range(3)) for s in strides)
    return AnchorLayout(tuple(strides), sizes, (0.5, 1.0, 2.0))


def cell_anchors(sizes: Sequence[float], ratios: Sequence[float]) -> Tensor:
    """[K, 4] anchors centred on (0, 0), size-major then ratio: w = s*sqrt(r), h = s/sqrt(r)."""
    s = torch.tensor(sizes, dtype=torch.float64)[:, None]  # [S, 1]
    r = torch.tensor(ratios, dtype=torch.float64)[None, :]  # [1, R]
    w = (s * r.sqrt()).reshape(-1)
    h = (s / r.sqrt()).reshape(-1)
    return torch.stack((-w / 2, -h / 2, w / 2, h / 2), dim=-1).float()


def feature_sizes(input_size: int | tuple[int, int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """Feature-map (H, W) per level for stride-2 3x3/pad-1 downsampling: ceil(size / stride)."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    return [(math.ceil(h / s), math.ceil(w / s)) for s in strides]


def scaled_anchor_base(input_size: int | Sequence[int]) -> float:
    """The paper's smallest anchor (24 px at 320 px) scaled to ``input_size`` (its shorter side):
    ``model.anchor_base: auto``. Keeps every anchor's size relative to the image, e.g. 19.2 at 256 px."""
    side = min(input_size) if isinstance(input_size, Sequence) else input_size
    return PAPER_ANCHOR_BASE * int(side) / PAPER_INPUT_SIZE


def grid_centres(stride: int | float, size_hw: tuple[int, int]) -> Tensor:
    """``[H*W, 2]`` xy pixel centres ``((x + 0.5) * stride, (y + 0.5) * stride)`` of one feature map, row-major:
    the one grid of anchors, priors and FCOS points."""
    h, w = size_hw
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((cx, cy), dim=-1).reshape(-1, 2)


def generate_anchors(
    layout: AnchorLayout,
    input_size: int | tuple[int, int],
    sizes_hw: Sequence[tuple[int, int]] | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """All anchors ``[A, 4]`` xyxy pixels for an input of ``input_size`` (int or (H, W)).

    ``sizes_hw`` gives the real feature-map sizes (the detector passes what its network produces);
    by default ``feature_sizes(input_size, strides)``. Centres sit at ``((x + 0.5) * stride, (y + 0.5) * stride)``.
    """
    if sizes_hw is None:
        sizes_hw = feature_sizes(input_size, layout.strides)
    if len(sizes_hw) != len(layout.strides):
        raise ValueError(f"got {len(sizes_hw)} feature maps for {len(layout.strides)} anchor levels")
    out = []
    for stride, sizes, size_hw in zip(layout.strides, layout.sizes, sizes_hw):
        base = cell_anchors(sizes, layout.ratios)  # [K, 4]
        xy = grid_centres(stride, size_hw)  # [H*W, 2]
        centres = torch.cat((xy, xy), dim=-1).reshape(-1, 1, 4)  # [H*W, 1, 4]
        out.append((centres + base[None]).reshape(-1, 4))  # [H*W*K, 4]
    return torch.cat(out).to(device) if device is not None else torch.cat(out)


def best_anchor_iou(gt_boxes: Tensor, anchors: Tensor, chunk: int = 1024) -> Tensor:
    """``[N]`` highest IoU of each box ``gt_boxes [N, 4]`` with any of ``anchors [A, 4]`` (xyxy, same pixels).

    Computed in chunks of ``chunk`` boxes so that ``[chunk, A]`` is the largest matrix ever held.
    """
    from mgdet.boxes import box_iou

    if gt_boxes.numel() == 0 or anchors.numel() == 0:
        return gt_boxes.new_zeros(gt_boxes.shape[0])
    parts = [box_iou(part, anchors).amax(dim=1) for part in gt_boxes.split(chunk)]  # [n, A] -> [n]
    return torch.cat(parts)
