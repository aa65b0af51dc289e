"""ImageNet normalisation constants (RGB, inputs in [0, 1]): the statistics torchvision's backbones were trained
with; the detectors normalise with them and the augmentation fills with the mean."""

from __future__ import annotations

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
