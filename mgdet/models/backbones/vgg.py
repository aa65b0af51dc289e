"""VGG-16 with batch norm, torchvision parameter names (``features.0`` ... ``features.41``).

Two variants:

* ``fc67=False`` (the authors' ``VGGBackbone`` for FSSD / RetinaNet / FCOS): returns conv4_3 (stride 8)
  and conv5_3 (stride 16), both 512 channels; pool5 is not used.
* ``fc67=True`` (SSD / RFBNet style): pool5 becomes a 3x3 stride-1 max pool, followed by the dilated
  ``fc6`` (3x3, dilation 6, 1024) and ``fc7`` (1x1, 1024) convs (with BN, randomly initialised: they
  have no counterpart in torchvision's ``vgg16_bn`` file); returns conv4_3 (stride 8, 512) and fc7
  (stride 16, 1024).

The classifier of the torchvision file (``classifier.*``, 120M parameters) is never part of the module; the loader
drops those keys (see :func:`mgdet.models.pretrained.load_pretrained`).
"""

from __future__ import annotations

from torch import Tensor, nn

from mgdet.models.layers import BatchNorm2d

_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
_CONV4_3 = 33  # features[:33] ends with conv4_3's ReLU (stride 8)
_CONV5_3 = 43  # features[33:43] = pool4 + conv5_x (stride 16); features[43] = pool5


class VGG16BN(nn.Module):
    """VGG-16-BN feature extractor; ``forward`` returns ``[stride-8 map, stride-16 map]``."""

    out_strides = (8, 16)
    #: key prefixes of the module that torchvision's file does not contain
    new_prefixes = ("fc6.", "fc7.")

    def __init__(self, fc67: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, v, 3, padding=1), BatchNorm2d(v), nn.ReLU(inplace=True)]
                in_ch = v
        self.fc67 = fc67
        if fc67:
            layers[-1] = nn.MaxPool2d(3, 1, 1)  # SSD's pool5: keeps stride 16
            self.fc6 = nn.Sequential(
                nn.Conv2d(512, 1024, 3, padding=6, dilation=6), BatchNorm2d(1024), nn.ReLU(inplace=True)
            )
            self.fc7 = nn.Sequential(nn.Conv2d(1024, 1024, 1), BatchNorm2d(1024), nn.ReLU(inplace=True))
        else:
            layers = layers[:-1]  # pool5 unused
        self.features = nn.Sequential(*layers)
        self.out_channels = (512, 1024) if fc67 else (512, 512)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> list[Tensor]:
        c4 = self.features[:_CONV4_3](x)  # [B, 512, H/8, W/8]
        c5 = self.features[_CONV4_3:_CONV5_3](c4)  # [B, 512, H/16, W/16]
        if self.fc67:
            c5 = self.fc7(self.fc6(self.features[_CONV5_3](c5)))  # [B, 1024, H/16, W/16]
        return [c4, c5]
