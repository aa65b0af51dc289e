"""Necks: feature pyramids built on the backbone maps.

The defaults reproduce the authors' public code ("MutualGuide", paper-era version), which differs from
the canonical designs:

* :class:`FSSDNeck` - every backbone map -> 1x1 conv (BN/ReLU) to ``width``, nearest-upsampled to the
  stride-8 size, concatenated, fused by a 3x3 conv (BN/ReLU), then stride-2 3x3 convs (BN/ReLU) give
  ``num_levels`` maps at strides 8, 16, 32, 64 (40, 20, 10, 5 cells at 320). Canonical FSSD (Li & Zhou)
  fuses at stride 8 too, but builds the pyramid SSD-style with 1x1/3x3 pairs and 6 levels.
* :class:`AuthorsFPNNeck` - the authors' "RetinaNet": the FSSD trunk above plus an FPN top-down path
  (1x1 lateral conv BN/ReLU, nearest upsample + add, 3x3 smoothing conv BN/ReLU) on its 4 levels.
  Canonical RetinaNet (see :class:`RetinaFPN`) builds P3-P5 from C3-C5 and P6/P7 by stride-2 convs.
* :class:`RFBNeck` - the authors' RFBNet: conv4_3 (1x1 -> width/2) concatenated with the upsampled
  top map (1x1 -> width/2) through an RFB-s block (stride 8); the top map through RFB (stride 16), then
  two stride-2 RFB blocks (strides 32, 64; the last with width/2 channels). The original RFBNet320 uses
  6 levels with plain conv extras at the end; the authors keep 4 levels to share the anchor layout.

Every neck takes a list of maps (stride ascending) and returns a list (stride ascending) and declares
``out_channels``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mgdet.models.layers import ConvBNReLU


def _up_to(x: Tensor, ref: Tensor) -> Tensor:
    """Nearest-upsample ``x`` to the spatial size of ``ref``."""
    return x if x.shape[-2:] == ref.shape[-2:] else F.interpolate(x, size=ref.shape[-2:], mode="nearest")


class FSSDNeck(nn.Module):
    """The authors' FSSD trunk (see module docstring): fuse at stride 8, then stride-2 convs."""

    def __init__(self, in_channels: Sequence[int], width: int = 256, num_levels: int = 4) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(ConvBNReLU(c, width, 1) for c in in_channels)
        self.fuse = ConvBNReLU(width * len(in_channels), width, 3)
        self.downs = nn.ModuleList(ConvBNReLU(width, width, 3, stride=2) for _ in range(num_levels - 1))
        self.out_channels = (width,) * num_levels

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        ref = feats[0]
        x = torch.cat([_up_to(t(f), ref) for t, f in zip(self.transforms, feats)], dim=1)
        x = self.fuse(x)  # [B, width, H/8, W/8]
        outs = [x]
        for down in self.downs:
            x = down(x)
            outs.append(x)
        return outs


class AuthorsFPNNeck(nn.Module):
    """The authors' "RetinaNet" neck: :class:`FSSDNeck` + FPN top-down path with BN/ReLU convs."""

    def __init__(self, in_channels: Sequence[int], width: int = 256, num_levels: int = 4) -> None:
        super().__init__()
        self.trunk = FSSDNeck(in_channels, width, num_levels)
        self.laterals = nn.ModuleList(ConvBNReLU(width, width, 1) for _ in range(num_levels))
        self.smooths = nn.ModuleList(ConvBNReLU(width, width, 3) for _ in range(num_levels))
        self.out_channels = (width,) * num_levels

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        lat = [conv(x) for conv, x in zip(self.laterals, self.trunk(feats))]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + _up_to(lat[i], lat[i - 1])
        return [conv(x) for conv, x in zip(self.smooths, lat)]


# RFB branch presets: (kernels of the convs before the dilated 3x3, dilation rate) per branch.
# RFB: 4 branches, rates 1/3/5/7 (5x5 as two 3x3, 7x7 as 1x7 + 7x1); RFB-s: 7 lighter branches with
# 1x3 / 3x1 convs (the authors' ``BasicRFB`` / ``BasicRFB_a`` branch structure, our own implementation).
RFB_BRANCHES: tuple[tuple[tuple[tuple[int, int], ...], int], ...] = (
    ((), 1),
    (((3, 3),), 3),
    (((3, 3), (3, 3)), 5),
    (((1, 7), (7, 1)), 7),
)
RFB_S_BRANCHES: tuple[tuple[tuple[tuple[int, int], ...], int], ...] = (
    ((), 1),
    (((3, 1),), 3),
    (((1, 3),), 3),
    (((3, 1),), 5),
    (((1, 3),), 5),
    (((1, 3), (3, 1)), 7),
    (((3, 1), (1, 3)), 7),
)


class RFB(nn.Module):
    """Receptive Field Block: parallel (1x1 reduce -> k x k convs -> dilated 3x3) branches, concatenated,
    1x1 linear fusion, ``scale`` * fused + 1x1 shortcut, ReLU. ``small=True`` gives RFB-s."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, small: bool = False, scale: float = 1.0):
        super().__init__()
        inter = max(in_ch // 8, 4)
        branch_ch = inter if small else 2 * inter
        self.scale = scale
        self.branches = nn.ModuleList()
        for kernels, rate in RFB_S_BRANCHES if small else RFB_BRANCHES:
            layers: list[nn.Module] = [ConvBNReLU(in_ch, inter, 1)]
            ch = inter
            for j, k in enumerate(kernels):
                s = stride if j == len(kernels) - 1 else 1
                layers.append(ConvBNReLU(ch, branch_ch, k, stride=s))
                ch = branch_ch
            last_stride = stride if not kernels else 1
            layers.append(ConvBNReLU(ch, branch_ch, 3, stride=last_stride, dilation=rate, relu=False))
            self.branches.append(nn.Sequential(*layers))
        self.linear = ConvBNReLU(branch_ch * len(self.branches), out_ch, 1, relu=False)
        self.shortcut = ConvBNReLU(in_ch, out_ch, 1, stride=stride, relu=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.linear(torch.cat([b(x) for b in self.branches], dim=1))
        return self.relu(out * self.scale + self.shortcut(x))


class RFBNeck(nn.Module):
    """The authors' RFBNet neck on VGG-16 (``[conv4_3, top]`` maps, see module docstring)."""

    def __init__(self, in_channels: Sequence[int], width: int = 512) -> None:
        super().__init__()
        if len(in_channels) != 2:
            raise ValueError("RFBNeck expects two maps (stride 8 and 16) from VGG-16")
        c3, c4 = in_channels
        self.reduce = ConvBNReLU(c3, width // 2, 1)
        self.up_reduce = ConvBNReLU(c4, width // 2, 1)
        self.norm = RFB(width, width, small=True)
        self.extras = nn.ModuleList([RFB(c4, width), RFB(width, width, stride=2), RFB(width, width // 2, stride=2)])
        self.out_channels = (width, width, width, width // 2)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        c3, x = feats
        outs = [self.norm(torch.cat((self.reduce(c3), _up_to(self.up_reduce(x), c3)), dim=1))]
        for block in self.extras:
            x = block(x)
            outs.append(x)
        return outs  # strides 8, 16, 32, 64


class RetinaFPN(nn.Module):
    """Canonical RetinaNet FPN (Lin et al.): 1x1 laterals + top-down + 3x3 output convs (no norm) on the
    backbone maps; extra levels by stride-2 3x3 convs from the last backbone map (P6) and then ReLU +
    stride-2 conv (P7...), until ``num_levels`` maps (P3-P7 for a stride-8/16/32 backbone)."""

    def __init__(self, in_channels: Sequence[int], width: int = 256, num_levels: int = 5) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(nn.Conv2d(c, width, 1) for c in in_channels)
        self.outputs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in in_channels)
        n_extra = num_levels - len(in_channels)
        self.extras = nn.ModuleList(
            nn.Conv2d(in_channels[-1] if i == 0 else width, width, 3, stride=2, padding=1) for i in range(n_extra)
        )
        self.out_channels = (width,) * num_levels
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward(self, feats: list[Tensor]) -> list[Tensor]:
        lat = [conv(x) for conv, x in zip(self.laterals, feats)]
        for i in range(len(lat) - 1, 0, -1):
            lat[i - 1] = lat[i - 1] + _up_to(lat[i], lat[i - 1])
        outs = [conv(x) for conv, x in zip(self.outputs, lat)]
        x = feats[-1]
        for i, conv in enumerate(self.extras):
            x = conv(x if i == 0 else F.relu(x))
            outs.append(x)
        return outs
