"""Scene composition of the benchmark: the ten shape classes, one image's random stream, compositing
objects on a background with the paper's hard cases, and the exact box convention (see the package docstring)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from mgdet.data.benchmark.backgrounds import load_backgrounds

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
DEFAULT_IMAGE_SIZE = 256
_MIN_CONTRAST = 70.0  # min. distance between an object's and its background's mean RGB
SPLITS: tuple[str, ...] = ("train", "val")
_SPLIT_CODE = {"train": 0, "val": 1}


@dataclass(frozen=True)
class SceneConfig:
    """How one image is composed. Sizes are fractions of the image side."""

    image_size: int = DEFAULT_IMAGE_SIZE
    max_objects: int = 6  # objects wanted per non-empty image: uniform in min_objects..max_objects
    min_objects: int = 1
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
    n_wanted = 0 if rng.random() < cfg.empty_prob else int(rng.integers(cfg.min_objects, cfg.max_objects + 1))

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
