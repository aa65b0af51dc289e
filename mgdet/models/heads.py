"""Prediction heads.

* :class:`LevelHead` (the authors' style): separate weights per level; ``depth`` 3x3 conv (BN/ReLU)
  layers of ``width`` channels shared by all outputs, then one 3x3 prediction conv per output. The
  paper-era code has ``depth=0`` (prediction convs straight on the neck maps); the default here is one
  trunk conv, and the CPU benchmark uses a light width.
* :class:`SharedTowerHead` (canonical RetinaNet / FCOS): weights shared across levels, separate
  ``depth``-conv towers for classification and regression, GroupNorm(32) or no norm.

Both return ``{output name: [B, sum_l H_l*W_l*K, dim]}`` flattened in anchor order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mgdet.models.layers import PRIOR_BIAS, ConvBNReLU, flatten_level


def _init_pred(conv: nn.Conv2d, name: str) -> None:
    nn.init.normal_(conv.weight, std=0.01)
    nn.init.constant_(conv.bias, PRIOR_BIAS if name == "cls_logits" else 0.0)


class LevelHead(nn.Module):
    """Per-level head; ``outputs``: name -> values per anchor, e.g. ``{"cls_logits": C, "box_deltas": 4}``."""

    def __init__(
        self,
        in_channels: Sequence[int],
        num_anchors: int,
        outputs: dict[str, int],
        width: int = 256,
        depth: int = 1,
    ) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.outputs = dict(outputs)
        self.towers = nn.ModuleList()
        self.preds = nn.ModuleList()
        for c in in_channels:
            layers = [ConvBNReLU(c if i == 0 else width, width, 3) for i in range(depth)]
            self.towers.append(nn.Sequential(*layers))
            ch = width if depth > 0 else c
            preds = nn.ModuleDict({n: nn.Conv2d(ch, num_anchors * d, 3, padding=1) for n, d in outputs.items()})
            for n, conv in preds.items():
                _init_pred(conv, n)
            self.preds.append(preds)

    def forward(self, feats: list[Tensor]) -> dict[str, Tensor]:
        out: dict[str, list[Tensor]] = {n: [] for n in self.outputs}
        for x, tower, preds in zip(feats, self.towers, self.preds):
            x = tower(x)
            for n, d in self.outputs.items():
                out[n].append(flatten_level(preds[n](x), d))  # [B, H*W*K, d]
        return {n: torch.cat(v, dim=1) for n, v in out.items()}


def _tower(ch: int, width: int, depth: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(depth):
        conv = nn.Conv2d(ch if i == 0 else width, width, 3, padding=1)
        nn.init.normal_(conv.weight, std=0.01)
        nn.init.zeros_(conv.bias)
        layers.append(conv)
        if norm == "gn":
            layers.append(nn.GroupNorm(min(32, max(1, width // 8)), width))  # 32 groups at width 256
        elif norm != "none":
            raise ValueError(f"norm must be 'gn' or 'none', got {norm!r}")
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SharedTowerHead(nn.Module):
    """Canonical RetinaNet / FCOS head shared across levels: a ``depth``-conv classification tower feeding
    ``cls_logits`` and a regression tower feeding every other output (box, centerness)."""

    def __init__(
        self,
        in_channels: int,
        num_anchors: int,
        outputs: dict[str, int],
        width: int = 256,
        depth: int = 4,
        norm: str = "gn",
    ) -> None:
        super().__init__()
        self.num_anchors = num_anchors
        self.outputs = dict(outputs)
        self.cls_tower = _tower(in_channels, width, depth, norm)
        self.reg_tower = _tower(in_channels, width, depth, norm)
        ch = width if depth > 0 else in_channels
        self.preds = nn.ModuleDict({n: nn.Conv2d(ch, num_anchors * d, 3, padding=1) for n, d in outputs.items()})
        for n, conv in self.preds.items():
            _init_pred(conv, n)

    def forward(self, feats: list[Tensor]) -> dict[str, Tensor]:
        out: dict[str, list[Tensor]] = {n: [] for n in self.outputs}
        for x in feats:
            xc, xr = self.cls_tower(x), self.reg_tower(x)
            for n, d in self.outputs.items():
                out[n].append(flatten_level(self.preds[n](xc if n == "cls_logits" else xr), d))
        return {n: torch.cat(v, dim=1) for n, v in out.items()}
