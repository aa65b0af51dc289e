"""MobileNetV2 (width 1.0) with torchvision's parameter names (``features.N...``, ``classifier.1``)."""

from __future__ import annotations

from torch import Tensor, nn

from mgdet.models.layers import BatchNorm2d


def _conv_bn_relu6(in_ch: int, out_ch: int, k: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv -> BN -> ReLU6 as ``features.i.{0,1,2}`` in torchvision's ``Conv2dNormActivation``."""
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, k, stride, (k - 1) // 2, groups=groups, bias=False),
        BatchNorm2d(out_ch),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise 3x3 -> project 1x1 (linear), residual when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_ch * expand
        self.use_res = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn_relu6(in_ch, hidden, 1))
        layers += [
            _conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.use_res else self.conv(x)


# (expansion t, channels c, repeats n, first stride s) from the MobileNetV2 paper.
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


class MobileNetV2(nn.Module):
    """MobileNetV2; ``forward`` returns ``[features.6 (stride 8, 32), features.13 (16, 96),
    features.18 (32, 1280)]``. ``include_classifier`` adds ``classifier.1`` (Dropout at index 0)."""

    out_channels = (32, 96, 1280)
    out_strides = (8, 16, 32)
    _taps = (6, 13, 18)  # indices in ``features`` whose outputs are returned

    def __init__(self, include_classifier: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, 3, 2)]
        in_ch = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(in_ch, c, s if i == 0 else 1, t))
                in_ch = c
        layers.append(_conv_bn_relu6(in_ch, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000)) if include_classifier else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self._taps:
                outs.append(x)
        return outs  # [B,32,H/8,W/8], [B,96,H/16,W/16], [B,1280,H/32,W/32]

    def classify(self, x: Tensor) -> Tensor:
        """ImageNet logits [B, 1000] of a normalized image (needs ``include_classifier``)."""
        if self.classifier is None:
            raise RuntimeError("built without classifier")
        return self.classifier(self.features(x).mean((2, 3)))
