"""Backbones with torchvision parameter names; each returns a list of feature maps (stride ascending)
and declares ``out_channels`` and ``out_strides``."""

from __future__ import annotations

from torch import nn

from mgdet.catalog import BACKBONES
from mgdet.models.backbones.mobilenet import MobileNetV2
from mgdet.models.backbones.resnet import ResNet18
from mgdet.models.backbones.vgg import VGG16BN


def build_backbone(name: str, fc67: bool = False) -> nn.Module:
    """``"resnet18"`` | ``"vgg16"`` (VGG-16-BN; ``fc67`` adds SSD's fc6/fc7) | ``"mobilenet_v2"``."""
    if name == "resnet18":
        return ResNet18()
    if name == "vgg16":
        return VGG16BN(fc67=fc67)
    if name == "mobilenet_v2":
        return MobileNetV2()
    raise ValueError(f"unknown backbone {name!r}; choose from {BACKBONES}")


__all__ = ["BACKBONES", "MobileNetV2", "ResNet18", "VGG16BN", "build_backbone"]
