"""The shipped CPU benchmark: a detection dataset generated locally, in VOC and COCO layouts.

PASCAL VOC and MS COCO cannot be downloaded everywhere, so the project's central claim (Mutual
Guidance beats static IoU anchor matching, above all on AP75) is tested on a dataset that this module
renders from material installed with pip:

* **Backgrounds** are random crops (scale, aspect, flip, colour jitter) of real photographs bundled in
  the scikit-image, scikit-learn and matplotlib wheels (see :data:`BACKGROUND_SOURCES`).
* **Objects** are ten procedurally rendered shape classes (:data:`CLASS_NAMES`). The class is the
  *outline* only; colour, texture, outline stroke, shading, rotation, aspect ratio and size are drawn
  from the same distributions for every class, so colour alone never tells the class apart. Pairs such
  as circle/ring/crescent, square/hexagon/circle and star/cross share most of their silhouette at small
  scale, which keeps the task learnable by a small CNN yet not trivial.

The paper's hard cases are produced on purpose: objects placed next to, and partly on top of, another
object ("a man riding a horse": box IoU 0.1-0.5), partial occlusion (painter's order), truncation by
the image border, sizes from about 8% to 60% of the image side, 0-6 objects per image and about 5%
empty images.

Box convention (exact, no rounding): an object's *mask* is the set of pixels its binary polygon covers
(``cv2.fillPoly`` without anti-aliasing). The box is the FULL (amodal) tight extent of that mask inside
the image, occluded parts included, like VOC boxes. If the mask covers pixel columns ``c0..c1`` and rows
``r0..r1`` (0-based, inclusive), then

* ``xyxy`` (mgdet, pixel edges) = ``[c0, r0, c1 + 1, r1 + 1]``;
* VOC xml (1-based inclusive pixel indices) = ``xmin=c0+1, ymin=r0+1, xmax=c1+1, ymax=r1+1``, so a
  loader doing ``x1 = xmin - 1, y1 = ymin - 1, x2 = xmax, y2 = ymax`` recovers ``xyxy`` exactly;
* COCO json ``bbox`` = ``[c0, r0, c1 - c0 + 1, r1 - r0 + 1]`` (xywh), ``area`` = box area ``w * h``.

An object is only accepted if at least 30% of its pixels stay visible after every later object is
pasted and at least 60% of it lies inside the image; placements that would break that are re-drawn, so
no annotated object is more than 70% hidden and no visible shape is left unannotated.

Every image has its own random stream ``numpy.random.default_rng([seed, split_code, index])``: the same
seed gives byte-identical files (OpenCV JPEG encoding at a fixed quality, JSON/XML written in a fixed
order, no timestamps), and the val split does not change when ``num_train`` changes.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import json
import math
import multiprocessing
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mgdet.boxes_np import pairwise_iou

__all__ = [
    "BACKGROUND_SOURCES",
    "CLASS_NAMES",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_NUM_TRAIN",
    "DEFAULT_NUM_VAL",
    "GENERATOR_VERSION",
    "BackgroundSource",
    "BenchmarkInfo",
    "Sample",
    "SceneConfig",
    "benchmark_matches",
    "compose_image",
    "generate_benchmark",
    "image_rng",
    "image_stem",
    "load_backgrounds",
    "render_sample",
    "sample_statistics",
    "verify_benchmark",
]

GENERATOR_VERSION = "1.0"
"""Bumped whenever the rendered pixels or annotations change for a given seed."""

CLASS_NAMES: tuple[str, ...] = (
    "circle",
    "ring",
    "triangle",
    "square",
    "hexagon",
    "star",
    "cross",
    "crescent",
    "arrow",
    "heart",
)
DEFAULT_NUM_TRAIN = 2000
DEFAULT_NUM_VAL = 400
DEFAULT_IMAGE_SIZE = 256
JPEG_QUALITY = 92
SPLITS: tuple[str, ...] = ("train", "val")
_SPLIT_CODE = {"train": 0, "val": 1}
_SPLIT_ID_OFFSET = {"train": 0, "val": 1_000_000}  # COCO image ids unique over both splits
_OUTPUTS = (
    "JPEGImages",
    "Annotations",
    "ImageSets",
    "annotations",
    "classes.txt",
    "README.md",
    "benchmark.json",
)


# --------------------------------------------------------------------------------------------------
# Background photographs shipped inside pip wheels
# --------------------------------------------------------------------------------------------------
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
_MIN_CONTRAST = 70.0  # min. distance between an object's and its background's mean RGB
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


# --------------------------------------------------------------------------------------------------
# Scene composition
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SceneConfig:
    """How one image is composed. Sizes are fractions of the image side."""

    image_size: int = DEFAULT_IMAGE_SIZE
    max_objects: int = 6  # objects wanted per non-empty image: uniform in 1..max_objects
    empty_prob: float = 0.05  # probability that an image has no object at all
    min_scale: float = 0.075  # unrotated longer side of a shape, fraction of the image side (log-uniform)
    max_scale: float = 0.5
    adjacent_prob: float = 0.5  # probability to place an object next to / on an existing one
    min_visible: float = 0.3  # every object keeps >= 30% of its pixels visible (else re-drawn)
    min_inside: float = 0.6  # every object has >= 60% of its pixels inside the image
    max_tries: int = 30  # placement attempts per object before giving up on it


@dataclass
class Sample:
    """One rendered image with exact annotations (N objects, S = image size)."""

    image: np.ndarray  # [S, S, 3] uint8 RGB
    boxes: np.ndarray  # [N, 4] float32 xyxy pixel edges (integer valued): amodal tight mask extent
    labels: np.ndarray  # [N] int64, 0-based index into CLASS_NAMES
    masks: np.ndarray  # [N, S, S] bool: full (amodal) object mask inside the image
    visible: np.ndarray  # [N, S, S] bool: pixels of the object that are on top in the final image
    visible_fraction: np.ndarray  # [N] float32: visible pixels / all pixels of the object (incl. outside)
    truncated: np.ndarray  # [N] bool: part of the object lies outside the image
    occlusion: np.ndarray  # [N] float32: fraction of the object's in-image pixels hidden by later objects

    def __len__(self) -> int:
        return len(self.labels)


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The independent random stream of image ``index`` of ``split``."""
    return np.random.default_rng([int(seed), _SPLIT_CODE[split], int(index)])


def _circle(n: int = 64) -> np.ndarray:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)  # [n, 2]


def _regular(n: int, start_deg: float) -> np.ndarray:
    t = np.deg2rad(start_deg) + np.arange(n) * 2.0 * math.pi / n
    return np.stack([np.cos(t), np.sin(t)], axis=1)  # [n, 2]


def _unit_shape(label: int, rng: np.random.Generator) -> list[tuple[np.ndarray, int]]:
    """Polygons of class ``label`` in unit coordinates, painted in order with value 1 (fill) or 0 (hole).

    The first polygon is the outline; the result is normalized so that its unrotated extent is
    centred and its longer half-extent is 1. Small random variations keep instances diverse.
    """
    name = CLASS_NAMES[label]
    polys: list[tuple[np.ndarray, int]]
    if name == "circle":
        polys = [(_circle(72), 1)]
    elif name == "ring":
        polys = [(_circle(72), 1), (_circle(72) * rng.uniform(0.45, 0.65), 0)]
    elif name == "triangle":
        ang = np.deg2rad(np.array([-90.0, 30.0, 150.0]) + rng.uniform(-10.0, 10.0, 3))
        rad = rng.uniform(0.9, 1.1, 3)
        polys = [(np.stack([rad * np.cos(ang), rad * np.sin(ang)], axis=1), 1)]
    elif name == "square":
        polys = [(_regular(4, 45.0), 1)]
    elif name == "hexagon":
        polys = [(_regular(6, 0.0), 1)]
    elif name == "star":
        outer = _regular(5, -90.0)
        inner = _regular(5, -54.0) * rng.uniform(0.38, 0.5)
        polys = [(np.stack([outer, inner], axis=1).reshape(10, 2), 1)]
    elif name == "cross":
        a = rng.uniform(0.2, 0.34)
        q = np.array([[a, a], [a, 1], [-a, 1], [-a, a], [-1, a], [-1, -a]])
        polys = [(np.concatenate([q, -q]), 1)]
    elif name == "crescent":
        r2 = rng.uniform(0.82, 0.95)
        d = rng.uniform(0.38, 0.6)
        polys = [(_circle(72), 1), (_circle(72) * r2 + np.array([d, -0.1 * d]), 0)]
    elif name == "arrow":
        w, h, hx = rng.uniform(0.17, 0.28), rng.uniform(0.5, 0.75), rng.uniform(-0.05, 0.25)
        polys = [(np.array([[-1, -w], [hx, -w], [hx, -h], [1, 0], [hx, h], [hx, w], [-1, w]]), 1)]
    elif name == "heart":
        t = np.linspace(0.0, 2.0 * math.pi, 80, endpoint=False)
        x = 16.0 * np.sin(t) ** 3
        y = -(13.0 * np.cos(t) - 5.0 * np.cos(2 * t) - 2.0 * np.cos(3 * t) - np.cos(4 * t))
        polys = [(np.stack([x, y], axis=1), 1)]
    else:  # pragma: no cover - CLASS_NAMES and this function are edited together
        raise ValueError(name)
    outline = polys[0][0]
    lo, hi = outline.min(axis=0), outline.max(axis=0)
    centre, half = (lo + hi) / 2.0, float((hi - lo).max()) / 2.0
    return [((p - centre) / half, v) for p, v in polys]


def _rasterize(polys: list[tuple[np.ndarray, int]], size: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Paint polygons (image pixel coordinates, pixel c spans [c, c+1)) into an ``[S, S]`` bool mask.

    Returns ``(mask_in_image [S, S] bool, window (x0, y0, x1, y1) of the full mask, full pixel count)``
    or ``None`` when nothing is painted. The full mask (incl. pixels outside the image) is needed to
    measure truncation.
    """
    pts_all = np.concatenate([p for p, _ in polys])
    x0, y0 = np.floor(pts_all.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(pts_all.max(axis=0)).astype(int) + 2
    local = np.zeros((y1 - y0, x1 - x0), np.uint8)  # [h, w] canvas around the shape
    for poly, value in polys:
        # cv2 puts integer coordinates at pixel centres: shift by half a pixel; 4 fractional bits.
        q = np.round((poly - np.array([x0, y0]) - 0.5) * 16.0).astype(np.int32)
        cv2.fillPoly(local, [q], int(value), lineType=cv2.LINE_8, shift=4)
    full = int(np.count_nonzero(local))
    if full == 0:
        return None
    mask = np.zeros((size, size), bool)
    cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x1, size), min(y1, size)
    if cx1 > cx0 and cy1 > cy0:
        mask[cy0:cy1, cx0:cx1] = local[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0] > 0
    return mask, np.array([x0, y0, x1, y1]), full


def _mask_box(mask: np.ndarray) -> np.ndarray:
    """Tight xyxy pixel-edge box ``[c0, r0, c1 + 1, r1 + 1]`` of a non-empty ``[S, S]`` bool mask."""
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], np.float32)


def _random_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random crop of a bundled photograph, flipped and colour-jittered: ``[S, S, 3]`` uint8."""
    sources = load_backgrounds()
    src = sources[int(rng.integers(len(sources)))]
    h, w = src.shape[:2]
    side = min(h, w) * rng.uniform(0.35, 1.0)
    aspect = math.exp(rng.uniform(-0.25, 0.25))
    cw, ch = min(w, max(8, round(side * aspect))), min(h, max(8, round(side / aspect)))
    x, y = int(rng.integers(w - cw + 1)), int(rng.integers(h - ch + 1))
    crop = src[y : y + ch, x : x + cw]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    interp = cv2.INTER_AREA if ch > size else cv2.INTER_LINEAR
    img = cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=interp)
    is_grey = bool(np.array_equal(src[::16, ::16, 0], src[::16, ::16, 1]))
    return _colour_jitter(rng, img, tint=is_grey)


def _colour_jitter(rng: np.random.Generator, img: np.ndarray, tint: bool) -> np.ndarray:
    """Hue rotation, saturation, contrast and brightness changes (+ a colour tint for grey pictures).

    Every change is a per-channel map of uint8 values, applied with lookup tables (fast).
    """
    v = np.arange(256, dtype=np.float32)
    hue_lut = (np.arange(256) + int(rng.integers(180))) % 180  # OpenCV hue is 0..179
    sat_lut = np.clip(v * rng.uniform(0.5, 1.3), 0, 255)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    hsv = cv2.LUT(hsv, np.stack([hue_lut, sat_lut, v], axis=1).astype(np.uint8).reshape(256, 1, 3))
    rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)  # [S, S, 3]
    gain = rng.uniform(0.55, 1.0, 3).astype(np.float32) if tint else np.ones(3, np.float32)
    mean = float((np.asarray(cv2.mean(rgb)[:3], np.float32) * gain).mean())
    lut = (v[:, None] * gain - mean) * rng.uniform(0.6, 1.2) + mean + rng.uniform(-35.0, 35.0)  # [256, 3]
    return cv2.LUT(rgb, np.clip(lut, 0, 255).astype(np.uint8).reshape(256, 1, 3))


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour (float32 [3]) with moderate-to-high saturation and value."""
    hsv = np.array([[[rng.integers(180), rng.integers(70, 256), rng.integers(60, 256)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).reshape(3).astype(np.float32)


def _object_texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Appearance of one object, independent of its class: ``[h, w, 3]`` float32 in 0..255."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)  # [h, w] each
    c1, c2 = _random_colour(rng), _random_colour(rng)
    mode = rng.choice(4, p=[0.35, 0.25, 0.2, 0.2])
    if mode == 0:  # solid colour
        tex = np.broadcast_to(c1, (h, w, 3)).astype(np.float32)
    elif mode == 1:  # stripes of two colours
        a = rng.uniform(0.0, math.pi)
        period = rng.uniform(3.0, 10.0)
        t = (xx * math.cos(a) + yy * math.sin(a)) / period
        sel = ((t - np.floor(t)) < rng.uniform(0.3, 0.7))[:, :, None]
        tex = np.where(sel, c1, c2).astype(np.float32)
    elif mode == 2:  # blotches / dots (product of two gratings)
        f1, f2 = rng.uniform(0.25, 0.9, 2)
        p1, p2 = rng.uniform(0.0, 2.0 * math.pi, 2)
        sel = ((np.sin(xx * f1 + p1) * np.sin(yy * f2 + p2)) > rng.uniform(-0.3, 0.3))[:, :, None]
        tex = np.where(sel, c1, c2).astype(np.float32)
    else:  # a patch of another photograph, tinted
        sources = load_backgrounds()
        src = sources[int(rng.integers(len(sources)))]
        sh, sw = src.shape[:2]
        side = int(min(sh, sw) * rng.uniform(0.1, 0.5))
        x, y = int(rng.integers(sw - side + 1)), int(rng.integers(sh - side + 1))
        patch = cv2.resize(src[y : y + side, x : x + side], (w, h), interpolation=cv2.INTER_LINEAR)
        tex = patch.astype(np.float32) * (c1 / max(float(c1.max()), 1.0)) * rng.uniform(0.8, 1.4)
    # linear shading across the object (a little "3-D")
    g = rng.uniform(-0.35, 0.35)
    b = rng.uniform(0.0, 2.0 * math.pi)
    ramp = ((xx - w / 2.0) * math.cos(b) + (yy - h / 2.0) * math.sin(b)) / max(h, w, 1)
    return tex * (1.0 + g * ramp)[:, :, None]


def _contrasting(tex: np.ndarray, m: np.ndarray, bg_mean: np.ndarray) -> np.ndarray:
    """Make the mean colour of ``tex`` [h, w, 3] under ``m`` [h, w] at least ``_MIN_CONTRAST`` from ``bg_mean``.

    Tries the texture, its negative, then shifts along (or against) the colour difference; keeps the
    first that is far enough, else the farthest, so every object has a visible, crisp extent.
    """

    def distance(t: np.ndarray) -> float:
        return float(np.linalg.norm(np.clip(t[m].mean(axis=0), 0, 255) - bg_mean))

    best, best_d = tex, distance(tex)
    if best_d >= _MIN_CONTRAST:
        return tex
    candidates = [255.0 - tex]
    diff = tex[m].mean(axis=0) - bg_mean
    norm = float(np.linalg.norm(diff))
    direction = diff / norm if norm > 1e-3 else np.full(3, 1.0 / math.sqrt(3.0), np.float32)
    candidates += [tex + direction * (2 * _MIN_CONTRAST), tex - direction * (2 * _MIN_CONTRAST)]
    for cand in candidates:
        d = distance(np.clip(cand, 0, 255))
        if d >= _MIN_CONTRAST:
            return cand
        if d > best_d:
            best, best_d = cand, d
    return best


def _paste(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> None:
    """Paint one object's appearance on ``image`` [S, S, 3] (in place) where ``mask`` [S, S] is set."""
    box = _mask_box(mask).astype(int)
    x0, y0, x1, y1 = box
    m = mask[y0:y1, x0:x1]  # [h, w]
    tex = _object_texture(rng, y1 - y0, x1 - x0)
    region = image[y0:y1, x0:x1]
    # keep the extent visible: push the object's mean colour away from the background under it
    bg_mean = region[m].astype(np.float32).mean(axis=0)  # [3]
    tex = _contrasting(tex, m, bg_mean)
    if rng.random() < 0.5:  # an outline stroke, drawn inside the mask so the box does not change
        k = np.ones((3, 3), np.uint8)
        inner = cv2.erode(m.astype(np.uint8), k, iterations=int(rng.integers(1, 3)), borderValue=0)
        if np.count_nonzero(inner) >= 0.4 * np.count_nonzero(m):  # thin shapes would become all stroke
            dark, light = rng.uniform(0, 50, 3), rng.uniform(205, 255, 3)
            colour = dark if rng.random() < 0.6 else light
            if np.linalg.norm(colour - bg_mean) < _MIN_CONTRAST:
                colour = light if colour is dark else dark
            tex[m & (inner == 0)] = colour
    region[m] = np.clip(tex[m], 0, 255).astype(np.uint8)


def compose_image(rng: np.random.Generator, cfg: SceneConfig | None = None) -> Sample:
    """Render one image with its exact annotations from the random stream ``rng``.

    Objects are placed one after the other (painter's order). With probability ``adjacent_prob`` a new
    object is put next to, partly on, an existing one, with a similar size; otherwise anywhere. A
    placement is re-drawn if the new object would be less than ``min_inside`` inside the image or would
    leave any object (itself included) with less than ``min_visible`` of its pixels visible.
    """
    cfg = cfg or SceneConfig()
    s = cfg.image_size
    image = _random_background(rng, s)
    n_wanted = 0 if rng.random() < cfg.empty_prob else int(rng.integers(1, cfg.max_objects + 1))

    labels: list[int] = []
    masks: list[np.ndarray] = []  # [S, S] bool each
    full_areas: list[int] = []
    sizes: list[float] = []  # unrotated longer side in pixels
    centres: list[np.ndarray] = []
    owner = np.full((s, s), -1, np.int16)  # index of the object on top at each pixel, -1 = background
    visible_count = np.zeros(0, np.int64)
    lo, hi = math.log(cfg.min_scale * s), math.log(cfg.max_scale * s)
    for _ in range(n_wanted):
        for _attempt in range(cfg.max_tries):
            label = int(rng.integers(len(CLASS_NAMES)))
            if labels and rng.random() < cfg.adjacent_prob:
                j = int(rng.integers(len(labels)))
                size = float(np.clip(sizes[j] * math.exp(rng.uniform(-0.6, 0.4)), math.exp(lo), math.exp(hi)))
                phi = rng.uniform(0.0, 2.0 * math.pi)
                dist = rng.uniform(0.4, 0.95) * (sizes[j] + size) / 2.0
                centre = centres[j] + dist * np.array([math.cos(phi), math.sin(phi)])
            else:
                size = math.exp(rng.uniform(lo, hi))
                centre = rng.uniform(0.25 * size, s - 0.25 * size, 2)  # limits (not forbids) truncation
            aspect = math.exp(rng.uniform(-0.3, 0.3))
            half = size / 2.0 * np.array([min(1.0, aspect), min(1.0, 1.0 / aspect)])
            theta = rng.uniform(0.0, 2.0 * math.pi)
            if rng.random() < 0.5:
                half = half * np.array([-1.0, 1.0])  # mirror (arrows, crescents, triangles)
            rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
            polys = [((p * half) @ rot.T + centre, v) for p, v in _unit_shape(label, rng)]
            raster = _rasterize(polys, s)
            if raster is None:
                continue
            mask, _, full = raster
            inside = int(np.count_nonzero(mask))
            if inside < cfg.min_inside * full or inside < 16:
                continue
            lost = np.bincount(owner[mask].astype(np.int64) + 1, minlength=len(labels) + 1)[1:]
            if len(labels) and np.any(visible_count - lost < cfg.min_visible * np.asarray(full_areas)):
                continue
            visible_count = np.append(visible_count - lost, inside)
            owner[mask] = len(labels)
            labels.append(label)
            masks.append(mask)
            full_areas.append(full)
            sizes.append(size)
            centres.append(centre)
            _paste(rng, image, mask)
            break

    # camera-like finish: mild blur (sometimes) and sensor noise
    if rng.random() < 0.25:
        image = cv2.GaussianBlur(image, (3, 3), rng.uniform(0.4, 0.8))
    # triangular noise from two uniform bytes per value (std 104 before scaling); much cheaper than normal
    u = np.frombuffer(rng.bytes(2 * image.size), np.uint8).reshape(2, *image.shape)
    noise = (u[0].astype(np.float32) + u[1].astype(np.float32) - 255.0) * (rng.uniform(0.0, 5.0) / 104.0)
    image = cv2.add(image, noise, dtype=cv2.CV_8U)  # saturating

    n = len(labels)
    masks_arr = np.stack(masks) if n else np.zeros((0, s, s), bool)  # [N, S, S]
    visible = owner[None] == np.arange(n, dtype=np.int16)[:, None, None]  # [N, S, S]
    full_arr = np.asarray(full_areas, np.float64)
    return Sample(
        image=image,
        boxes=np.stack([_mask_box(m) for m in masks]) if n else np.zeros((0, 4), np.float32),
        labels=np.asarray(labels, np.int64),
        masks=masks_arr,
        visible=visible,
        visible_fraction=(visible.reshape(n, s * s).sum(1) / np.maximum(full_arr, 1)).astype(np.float32),
        truncated=masks_arr.reshape(n, s * s).sum(1) < full_arr,
        occlusion=(1.0 - visible.reshape(n, s * s).sum(1) / masks_arr.reshape(n, s * s).sum(1)).astype(np.float32),
    )


def render_sample(seed: int = 0, index: int = 0, split: str = "train", image_size: int = DEFAULT_IMAGE_SIZE) -> Sample:
    """Image ``index`` of ``split`` exactly as :func:`generate_benchmark` renders it (before JPEG)."""
    return compose_image(image_rng(seed, split, index), SceneConfig(image_size=image_size))


# --------------------------------------------------------------------------------------------------
# Statistics of the hard cases
# --------------------------------------------------------------------------------------------------
def sample_statistics(samples: Sequence[Sample], image_size: int) -> dict:
    """Counts of the hard cases over rendered samples (the ``stats`` block of ``benchmark.json``).

    Only ``boxes``, ``labels``, ``truncated`` and ``occlusion`` are read (masks may be stripped).
    """
    per_class = np.zeros(len(CLASS_NAMES), np.int64)
    n_obj = np.array([len(x) for x in samples], np.int64)
    pairs_mid = pairs_any = occluded = heavily = truncated = 0
    rel: list[np.ndarray] = []
    areas: list[np.ndarray] = []
    for x in samples:
        if not len(x):
            continue
        per_class += np.bincount(x.labels, minlength=len(CLASS_NAMES))
        iou = pairwise_iou(x.boxes, x.boxes)[np.triu_indices(len(x), 1)]
        pairs_mid += int(np.count_nonzero((iou >= 0.1) & (iou <= 0.5)))
        pairs_any += int(np.count_nonzero(iou > 0))
        occluded += int(np.count_nonzero(x.occlusion > 0.05))
        heavily += int(np.count_nonzero(x.occlusion > 0.4))
        truncated += int(np.count_nonzero(x.truncated))
        wh = x.boxes[:, 2:] - x.boxes[:, :2]
        rel.append(wh.max(axis=1) / image_size)
        areas.append(wh.prod(axis=1))
    rel_all = np.concatenate(rel) if rel else np.zeros(0)
    area_all = np.concatenate(areas) if areas else np.zeros(0)
    total = int(n_obj.sum())
    return {
        "images": len(samples),
        "objects": total,
        "empty_images": int(np.count_nonzero(n_obj == 0)),
        "max_objects_per_image": int(n_obj.max()) if len(n_obj) else 0,
        "objects_per_class": {name: int(c) for name, c in zip(CLASS_NAMES, per_class)},
        "overlapping_pairs_iou_0.1_0.5": pairs_mid,
        "overlapping_pairs_any": pairs_any,
        "occluded_objects": occluded,  # more than 5% of the in-image pixels hidden
        "heavily_occluded_objects": heavily,  # more than 40% hidden
        "truncated_objects": truncated,
        "box_side_min_frac": round(float(rel_all.min()), 4) if total else 0.0,
        "box_side_max_frac": round(float(rel_all.max()), 4) if total else 0.0,
        "box_side_median_frac": round(float(np.median(rel_all)), 4) if total else 0.0,
        "coco_small": int(np.count_nonzero(area_all < 32**2)),
        "coco_medium": int(np.count_nonzero((area_all >= 32**2) & (area_all < 96**2))),
        "coco_large": int(np.count_nonzero(area_all >= 96**2)),
    }


# --------------------------------------------------------------------------------------------------
# Writing the VOC + COCO layout
# --------------------------------------------------------------------------------------------------
@dataclass
class BenchmarkInfo:
    """What :func:`generate_benchmark` produced (or found already there)."""

    root: Path
    seed: int
    num_train: int
    num_val: int
    image_size: int
    class_names: tuple[str, ...] = CLASS_NAMES
    stats: dict = field(default_factory=dict)  # {"train": {...}, "val": {...}} see sample_statistics
    seconds: float = 0.0
    skipped: bool = False  # True when a matching benchmark was already present


def _params(seed: int, num_train: int, num_val: int, image_size: int) -> dict:
    cfg = asdict(SceneConfig(image_size=image_size))
    return {
        "seed": int(seed),
        "num_train": int(num_train),
        "num_val": int(num_val),
        "image_size": int(image_size),
        "jpeg_quality": JPEG_QUALITY,
        "scene": cfg,
    }


def benchmark_matches(root: str | Path, seed: int, num_train: int, num_val: int, image_size: int) -> bool:
    """True when ``root/benchmark.json`` records this generator version and these parameters."""
    meta_path = Path(root) / "benchmark.json"
    if not meta_path.is_file():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return False
    return (
        meta.get("generator_version") == GENERATOR_VERSION
        and meta.get("params") == _params(seed, num_train, num_val, image_size)
        and tuple(meta.get("classes", ())) == CLASS_NAMES
    )


def image_stem(split: str, index: int) -> str:
    """File stem of image ``index`` of ``split`` (``train_000000``)."""
    return f"{split}_{index:06d}"


def _voc_xml(stem: str, sample: Sample) -> bytes:
    """VOC annotation of one image (1-based inclusive pixel indices, see the module docstring)."""
    s = sample.image.shape[0]
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "JPEGImages"
    ET.SubElement(root, "filename").text = f"{stem}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "mgdet benchmark"
    size = ET.SubElement(root, "size")
    ET.SubElement(size, "width").text = str(s)
    ET.SubElement(size, "height").text = str(s)
    ET.SubElement(size, "depth").text = "3"
    ET.SubElement(root, "segmented").text = "0"
    for k in range(len(sample)):
        x1, y1, x2, y2 = (int(v) for v in sample.boxes[k])  # pixel edges
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = CLASS_NAMES[int(sample.labels[k])]
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = str(int(sample.truncated[k]))
        ET.SubElement(obj, "occluded").text = str(int(sample.occlusion[k] > 0))
        ET.SubElement(obj, "difficult").text = "0"
        bnd = ET.SubElement(obj, "bndbox")
        ET.SubElement(bnd, "xmin").text = str(x1 + 1)  # 1-based index of the first column
        ET.SubElement(bnd, "ymin").text = str(y1 + 1)
        ET.SubElement(bnd, "xmax").text = str(x2)  # 1-based index of the last column
        ET.SubElement(bnd, "ymax").text = str(y2)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8") + b"\n"


def _readme_text(seed: int, num_train: int, num_val: int, image_size: int) -> str:
    rows = "\n".join(f"| {s.name} | {_PIP_NAME[s.package]} | `{s.relpath}` | {s.licence} |" for s in BACKGROUND_SOURCES)
    return f"""# mgdet CPU benchmark (generator {GENERATOR_VERSION})

Generated by `mgdet.data.benchmark.generate_benchmark(seed={seed}, num_train={num_train},
num_val={num_val}, image_size={image_size})`. Regenerating with the same parameters and the same
installed packages gives byte-identical files.

Classes ({len(CLASS_NAMES)}): {", ".join(CLASS_NAMES)}.
The class is the outline of a rendered shape; colours, textures, outline strokes, shading, rotation,
aspect and size are shared by all classes.

## Layout
- `JPEGImages/<id>.jpg` ({image_size}x{image_size} RGB, JPEG quality {JPEG_QUALITY})
- `Annotations/<id>.xml` VOC: 1-based inclusive pixel indices; x1 = xmin - 1, y1 = ymin - 1,
  x2 = xmax, y2 = ymax gives the exact box in pixel-edge coordinates. Boxes are the full (amodal)
  tight extent of the object mask inside the image. `difficult` is always 0.
- `ImageSets/Main/{{train,val}}.txt`
- `annotations/instances_{{train,val}}.json` COCO: bbox = [x1, y1, w, h] (same boxes), area = w * h,
  iscrowd = 0, category ids 1..{len(CLASS_NAMES)} in `classes.txt` order.
- `classes.txt`, `benchmark.json` (generator version, seed, parameters, statistics).

## Sources and licences
The rendered shapes are generated by mgdet (MIT). The backgrounds (and the "photo" object texture)
are crops of pictures that ship inside pip wheels; nothing is downloaded. What each package says
about each picture (scikit-image: the docstrings of `skimage.data`; scikit-learn:
`sklearn/datasets/images/README.txt`; matplotlib: the picture's embedded JPEG comment, the package
itself states no separate licence for its sample data):

| picture | package | file | licence / status as stated |
|---|---|---|---|
{rows}

Note: the two scikit-learn pictures are CC BY 2.0 (https://creativecommons.org/licenses/by/2.0/),
so images cropped from them must credit the photographers and keep the licence reference: china.jpg
by danielbuechele on Flickr; flower.jpg by the Flickr user vultilion according to the README's source
link (its attribution line repeats "danielbuechele", apparently a copy-paste slip). Everything else is
public domain / CC0 / "no known copyright restrictions" as stated by the package that ships it.
Redistributing this generated folder therefore requires keeping this README (the attribution).
"""


def _remove_outputs(root: Path) -> None:
    """Delete only what the generator writes (never the whole folder)."""
    for name in _OUTPUTS:
        p = root / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _render_chunk(root: str, seed: int, split: str, indices: range, image_size: int) -> list[Sample]:
    """Render images ``indices`` of ``split``, write their JPEG and VOC xml, return stripped samples.

    Top-level (picklable) so that worker processes can run it; the returned samples keep only boxes,
    labels, truncation and occlusion (no image, no masks).
    """
    cfg = SceneConfig(image_size=image_size)
    out: list[Sample] = []
    empty = np.zeros((0, image_size, image_size), bool)
    for i in indices:
        sample = compose_image(image_rng(seed, split, i), cfg)
        stem = image_stem(split, i)
        ok, jpg = cv2.imencode(".jpg", sample.image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:  # pragma: no cover
            raise RuntimeError("JPEG encoding failed")
        (Path(root) / "JPEGImages" / f"{stem}.jpg").write_bytes(jpg.tobytes())
        (Path(root) / "Annotations" / f"{stem}.xml").write_bytes(_voc_xml(stem, sample))
        out.append(dataclasses.replace(sample, image=np.zeros((0, 0, 3), np.uint8), masks=empty, visible=empty))
    return out


def _coco_json(split: str, seed: int, image_size: int, samples: Sequence[Sample]) -> dict:
    """COCO instances dict of one split (ids: images ``offset + i + 1``, annotations ``1..``)."""
    images, annotations = [], []
    for i, sample in enumerate(samples):
        image_id = _SPLIT_ID_OFFSET[split] + i + 1
        images.append(
            {
                "id": image_id,
                "file_name": f"{image_stem(split, i)}.jpg",
                "width": image_size,
                "height": image_size,
            }
        )
        for box, label in zip(sample.boxes.astype(int).tolist(), sample.labels.tolist()):
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": label + 1,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": "mgdet CPU benchmark", "version": GENERATOR_VERSION, "seed": int(seed)},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k + 1, "name": n, "supercategory": "shape"} for k, n in enumerate(CLASS_NAMES)],
    }


def generate_benchmark(
    out_dir: str | Path,
    seed: int = 0,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_val: int = DEFAULT_NUM_VAL,
    image_size: int = DEFAULT_IMAGE_SIZE,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    workers: int = 1,
) -> BenchmarkInfo:
    """Render the benchmark into ``out_dir`` in the VOC + COCO layout of docs/CONTRACTS.md.

    If ``out_dir/benchmark.json`` already records the same generator version and parameters, nothing
    is written and the recorded info is returned with ``skipped=True``. If ``out_dir`` holds other
    generator outputs (different parameters, or an interrupted run), ``FileExistsError`` is raised
    unless ``overwrite``; then only the generator's own files and folders are removed.
    ``benchmark.json`` is written last, so an interrupted run is never mistaken for a finished one.

    ``progress(done, total)`` is called as images are finished (for a progress bar). ``workers > 1``
    renders in that many "spawn" processes; the files do not depend on it, since every image has its
    own random stream. Spawned workers re-import the caller's main module, so only pass it from a
    program whose main module is importable and guarded (``if __name__ == "__main__":``), e.g. the
    ``mgdet`` console script; not from ``python - <<EOF`` or ``python -c``.
    """
    if num_train < 0 or num_val < 0 or image_size < 32:
        raise ValueError("num_train/num_val must be >= 0 and image_size >= 32")
    root = Path(out_dir)
    if not overwrite and benchmark_matches(root, seed, num_train, num_val, image_size):
        meta = json.loads((root / "benchmark.json").read_text())
        return BenchmarkInfo(root, seed, num_train, num_val, image_size, stats=meta["stats"], skipped=True)
    if any((root / name).exists() for name in _OUTPUTS):
        if not overwrite:
            raise FileExistsError(
                f"{root} holds a benchmark with other parameters or an unfinished one; pass overwrite=True"
            )
        _remove_outputs(root)

    start = time.perf_counter()
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main", "annotations"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    total = num_train + num_val
    chunk = 50
    jobs = [
        (str(root), int(seed), split, range(lo, min(lo + chunk, count)), int(image_size))
        for split, count in (("train", num_train), ("val", num_val))
        for lo in range(0, count, chunk)
    ]
    rendered: dict[str, list[Sample]] = {split: [] for split in SPLITS}
    done = 0

    def collect(job: tuple, samples: list[Sample]) -> None:
        nonlocal done
        rendered[job[2]].extend(samples)  # jobs are consumed in order, so samples stay in index order
        done += len(samples)
        if progress is not None:
            progress(done, total)

    if workers > 1:
        # "spawn": safe whatever threads (torch, OpenCV) the parent process already runs
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            for job, samples in zip(jobs, pool.map(_render_chunk, *zip(*jobs))):
                collect(job, samples)
    else:
        for job in jobs:
            collect(job, _render_chunk(*job))

    stats: dict[str, dict] = {}
    for split in SPLITS:
        samples = rendered[split]
        stems = "".join(f"{image_stem(split, i)}\n" for i in range(len(samples)))
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text(stems)
        coco = _coco_json(split, seed, image_size, samples)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco, separators=(",", ":")))
        stats[split] = sample_statistics(samples, image_size)
    (root / "classes.txt").write_text("".join(f"{n}\n" for n in CLASS_NAMES))
    (root / "README.md").write_text(_readme_text(seed, num_train, num_val, image_size))
    meta = {
        "generator": "mgdet.data.benchmark",
        "generator_version": GENERATOR_VERSION,
        "params": _params(seed, num_train, num_val, image_size),
        "classes": list(CLASS_NAMES),
        "sources": [asdict(src) for src in BACKGROUND_SOURCES],
        "stats": stats,
    }
    (root / "benchmark.json").write_text(json.dumps(meta, indent=2) + "\n")
    seconds = time.perf_counter() - start
    return BenchmarkInfo(root, seed, num_train, num_val, image_size, stats=stats, seconds=seconds)


# --------------------------------------------------------------------------------------------------
# Verification
# --------------------------------------------------------------------------------------------------
def _read_voc_boxes(path: Path) -> tuple[tuple[int, int], list[tuple[str, list[int]]]]:
    """``((width, height), [(name, xyxy pixel edges)])`` from one VOC xml file."""
    tree = ET.parse(path).getroot()
    size = tree.find("size")
    wh = (int(size.findtext("width")), int(size.findtext("height")))
    objs = []
    for obj in tree.iter("object"):
        bb = obj.find("bndbox")
        xmin, ymin, xmax, ymax = (int(float(bb.findtext(k))) for k in ("xmin", "ymin", "xmax", "ymax"))
        objs.append((obj.findtext("name"), [xmin - 1, ymin - 1, xmax, ymax]))
    return wh, objs


def verify_benchmark(root: str | Path, check_images: bool = True) -> list[str]:
    """Check that a benchmark folder is complete and its VOC and COCO annotations agree.

    Returns a list of problems (empty when everything is consistent): missing files, ImageSets and
    COCO images that differ, boxes outside their image or empty, XML and JSON boxes/classes that
    differ, JPEGs whose size differs from the annotation (when ``check_images``).
    """
    root = Path(root)
    problems: list[str] = []
    for name in _OUTPUTS:
        if not (root / name).exists():
            problems.append(f"missing {name}")
    if problems:
        return problems
    classes = (root / "classes.txt").read_text().split()
    for split in SPLITS:
        ids = (root / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        coco = json.loads((root / "annotations" / f"instances_{split}.json").read_text())
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        if [cats.get(k + 1) for k in range(len(classes))] != classes or len(cats) != len(classes):
            problems.append(f"{split}: COCO categories differ from classes.txt")
        by_image: dict[int, list[dict]] = {im["id"]: [] for im in coco["images"]}
        for ann in coco["annotations"]:
            if ann["image_id"] not in by_image:
                problems.append(f"{split}: annotation {ann['id']} refers to unknown image {ann['image_id']}")
                continue
            by_image[ann["image_id"]].append(ann)
        stems = [Path(im["file_name"]).stem for im in coco["images"]]
        if stems != ids:
            problems.append(f"{split}: ImageSets/Main/{split}.txt and COCO images differ")
        for im in coco["images"]:
            stem = Path(im["file_name"]).stem
            xml_path = root / "Annotations" / f"{stem}.xml"
            jpg_path = root / "JPEGImages" / im["file_name"]
            if not xml_path.is_file() or not jpg_path.is_file():
                problems.append(f"{stem}: missing xml or jpg")
                continue
            (w, h), voc = _read_voc_boxes(xml_path)
            if (w, h) != (im["width"], im["height"]):
                problems.append(f"{stem}: xml size {(w, h)} != json size {(im['width'], im['height'])}")
            coco_objs = [
                (
                    cats.get(a["category_id"]),
                    [*a["bbox"][:2], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]],
                )
                for a in by_image[im["id"]]
            ]
            if voc != coco_objs:
                problems.append(f"{stem}: VOC and COCO boxes differ")
            for name, (x1, y1, x2, y2) in voc:
                if name not in classes:
                    problems.append(f"{stem}: unknown class {name!r}")
                if not (0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h):
                    problems.append(f"{stem}: box {[x1, y1, x2, y2]} empty or outside the {w}x{h} image")
            if check_images:
                img = cv2.imread(str(jpg_path), cv2.IMREAD_UNCHANGED)
                if img is None or img.shape != (h, w, 3):
                    problems.append(f"{stem}: JPEG unreadable or not {w}x{h}x3")
    return problems
