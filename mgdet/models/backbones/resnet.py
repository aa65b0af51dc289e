"""ResNet-18 with torchvision's parameter names (``conv1``, ``bn1``, ``layer1..4``, ``fc``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mgdet.models.layers import BatchNorm2d


class BasicBlock(nn.Module):
    """Two 3x3 convs with identity (or 1x1 ``downsample``) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18; ``forward`` returns ``[C3 (stride 8, 128), C4 (16, 256), C5 (32, 512)]``.

    ``include_classifier=True`` adds torchvision's ``fc`` (1000 classes) so the complete ImageNet file
    loads with ``strict=True``; :meth:`classify` then gives ImageNet logits.
    """

    out_channels = (128, 256, 512)
    out_strides = (8, 16, 32)

    def __init__(self, include_classifier: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        self.fc = nn.Linear(512, 1000) if include_classifier else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))  # [B, 64, H/4, W/4]
        c3 = self.layer2(self.layer1(x))  # [B, 128, H/8, W/8]
        c4 = self.layer3(c3)  # [B, 256, H/16, W/16]
        c5 = self.layer4(c4)  # [B, 512, H/32, W/32]
        return [c3, c4, c5]

    def classify(self, x: Tensor) -> Tensor:
        """ImageNet logits [B, 1000] of a normalized image (needs ``include_classifier``)."""
        if self.fc is None:
            raise RuntimeError("built without classifier")
        return self.fc(torch.flatten(self.forward(x)[-1].mean((2, 3)), 1))
