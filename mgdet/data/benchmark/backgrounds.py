"""Backgrounds of the benchmark: photographs shipped inside pip wheels (scikit-image, scikit-learn,
matplotlib), found on disk and downscaled once; never downloaded."""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


@dataclass(frozen=True)
class BackgroundSource:
    """One photograph bundled in an installed package (no download at any time)."""

    name: str
    package: str  # import name of the package that ships it: "skimage" | "sklearn" | "matplotlib"
    relpath: str  # path inside the package folder
    licence: str  # what the package says about the picture, summarized


def _bg(name: str, package: str, relpath: str, licence: str) -> BackgroundSource:
    return BackgroundSource(name, package, relpath, licence)


BACKGROUND_SOURCES: tuple[BackgroundSource, ...] = (
    _bg("astronaut", "skimage", "data/astronaut.png", "NASA photo; public domain"),
    _bg("coffee", "skimage", "data/coffee.png", "CC0 (Rachel Michetti)"),
    _bg("chelsea", "skimage", "data/chelsea.png", "CC0 (Stefan van der Walt)"),
    _bg("rocket", "skimage", "data/rocket.jpg", "SpaceX photo; public domain"),
    _bg("hubble_deep_field", "skimage", "data/hubble_deep_field.jpg", "NASA; public domain"),
    _bg("immunohistochemistry", "skimage", "data/ihc.png", "CMMI; no known copyright restrictions"),
    _bg("coins", "skimage", "data/coins.png", "Brooklyn Museum; no known copyright restrictions"),
    _bg("camera", "skimage", "data/camera.png", "CC0 (Lav Varshney)"),
    _bg("brick", "skimage", "data/brick.png", "CC0 (CC0Textures)"),
    _bg("grass", "skimage", "data/grass.png", "CC0 (DeviantArt, linolafett)"),
    _bg("gravel", "skimage", "data/gravel.png", "CC0 (CC0Textures)"),
    _bg("retina", "skimage", "data/retina.jpg", "CC0 1.0 (Mikael Haggstrom, Wikimedia Commons)"),
    _bg("clock", "skimage", "data/clock_motion.png", "public domain (Stefan van der Walt)"),
    _bg("china", "sklearn", "datasets/images/china.jpg", "CC BY 2.0 (danielbuechele, Flickr)"),
    _bg("flower", "sklearn", "datasets/images/flower.jpg", "CC BY 2.0 (vultilion, Flickr; see note)"),
    _bg(
        "grace_hopper",
        "matplotlib",
        "mpl-data/sample_data/grace_hopper.jpg",
        "U.S. Navy photo; public domain per the Wikimedia Commons page its JPEG comment names "
        "(matplotlib states no licence of its own for it)",
    ),
)
_PIP_NAME = {"skimage": "scikit-image", "sklearn": "scikit-learn", "matplotlib": "matplotlib"}
_MAX_SOURCE_SIDE = 512  # sources are downscaled once at load so that crops stay cheap


def _source_path(src: BackgroundSource) -> Path:
    """Location of a bundled picture, found without importing its package (importing sklearn is slow)."""
    spec = importlib.util.find_spec(src.package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {src.package!r} is not installed (needed for {src.name!r})")
    return Path(next(iter(spec.submodule_search_locations))) / src.relpath


@functools.lru_cache(maxsize=1)
def load_backgrounds() -> tuple[np.ndarray, ...]:
    """Decode every :data:`BACKGROUND_SOURCES` picture once: tuple of ``[H, W, 3]`` uint8 RGB arrays.

    Grey pictures come back with three equal channels (they get a random tint when used). Pictures are
    downscaled (area interpolation) so that their longer side is at most 512 px.
    """
    images = []
    for src in BACKGROUND_SOURCES:
        path = _source_path(src)
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"background {src.name!r} not found at {path} (is {src.package} installed?)")
        h, w = bgr.shape[:2]
        scale = _MAX_SOURCE_SIDE / max(h, w)
        if scale < 1.0:
            bgr = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        rgb.setflags(write=False)
        images.append(rgb)
    return tuple(images)
