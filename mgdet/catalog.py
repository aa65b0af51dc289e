"""The names mgdet knows, written once (torch-free): detectors, backbones, dataset formats and the default input
size (the paper's 320 px). The config, the model builders and the command line all read them from here."""

from __future__ import annotations

from collections.abc import Sequence

#: detectors: the paper's three anchor-based ones and the anchor-free FCOS of its supplementary
DETECTORS: tuple[str, ...] = ("fssd", "retinanet", "rfbnet", "fcos")
#: ImageNet backbones, with torchvision's state-dict keys
BACKBONES: tuple[str, ...] = ("resnet18", "vgg16", "mobilenet_v2")
#: dataset layouts the loaders read
DATA_FORMATS: tuple[str, ...] = ("voc", "coco", "yolo")
#: the paper's input size (pixels per side), every detector's default
DEFAULT_INPUT_SIZE = 320


def as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    """An input size ``S`` or ``(H, W)`` as ``(H, W)`` integers."""
    if isinstance(size, int | float):
        return int(size), int(size)
    h, w = size
    return int(h), int(w)
