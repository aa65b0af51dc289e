"""Detection models: backbones, necks, heads and the :class:`Detector` built by :func:`build_detector`."""

from mgdet.models.detector import DETECTORS, Detector, build_detector
from mgdet.models.pretrained import load_pretrained

__all__ = ["DETECTORS", "Detector", "build_detector", "load_pretrained"]
