"""SSD-style augmentation and evaluation resizing in numpy/OpenCV.

Train pipeline (each step is a pure function of its inputs and a ``numpy.random.Generator``):
photometric distortion -> zoom-out expand -> IoU-constrained random crop -> horizontal flip ->
resize to ``size x size``. All box maths is vectorized over boxes; images are float32 RGB in [0, 1]
between steps. Both transforms map ``(image uint8 [H,W,3] RGB, boxes [N,4] xyxy px, labels [N])`` to
``(tensor [3,S,S] float32 0..1, boxes [N',4] float32 in S-pixels, labels [N'] int64)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from mgdet.catalog import as_hw
from mgdet.utils.imagenet import IMAGENET_MEAN

# ImageNet mean and std (mgdet.utils.imagenet): the detector normalizes its input with them (``Detector.mean``
# / ``std``); the expand canvas is filled with the mean (zero after that normalization).
#: SSD crop modes: None keeps the whole image, a number is the minimum IoU some box must have with the crop.
CROP_MIN_IOUS: tuple[float | None, ...] = (None, 0.1, 0.3, 0.5, 0.7, 0.9)
CROP_TRIALS = 50  # candidate crops drawn per call (all at once)


def _empty_boxes(boxes: np.ndarray) -> np.ndarray:
    return np.asarray(boxes, np.float32).reshape(-1, 4)


@dataclass(frozen=True)
class Photometric:
    """The photometric part of a view (SSD order): each change None when not drawn."""

    brightness: float | None  # added, in [0, 1] units
    contrast_first: bool  # contrast before (else after) the HSV changes
    contrast: float | None  # multiplied
    saturation: float | None  # multiplies S
    hue: float | None  # added to H, degrees


def draw_photometric(rng: np.random.Generator) -> Photometric:
    """Brightness, contrast, saturation and hue, each drawn with p=0.5."""
    brightness = rng.uniform(-32, 32) / 255.0 if rng.random() < 0.5 else None
    contrast_first = bool(rng.random() < 0.5)
    contrast = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    sat = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    hue = rng.uniform(-18, 18) if rng.random() < 0.5 else None
    return Photometric(brightness, contrast_first, contrast, sat, hue)


def apply_photometric(image: np.ndarray, p: Photometric) -> np.ndarray:
    """image: float32 [H, W, 3] RGB in [0, 1] -> same shape, clipped to [0, 1]."""
    img = image
    if p.brightness is not None:
        img = img + p.brightness
    if p.contrast_first and p.contrast is not None:
        img = img * p.contrast
    if p.saturation is not None or p.hue is not None:
        hsv = cv2.cvtColor(np.clip(img, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)  # H in [0, 360)
        if p.saturation is not None:
            hsv[..., 1] = np.clip(hsv[..., 1] * p.saturation, 0, 1)
        if p.hue is not None:
            hsv[..., 0] = np.mod(hsv[..., 0] + p.hue, 360.0)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not p.contrast_first and p.contrast is not None:
        img = img * p.contrast
    return np.clip(img, 0, 1).astype(np.float32)


def photometric_distort(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast, saturation and hue (each with p=0.5), SSD order:
    :func:`apply_photometric` of :func:`draw_photometric`."""
    return apply_photometric(image, draw_photometric(rng))


def draw_expand(rng: np.random.Generator, hw: tuple[int, int], max_ratio: float) -> tuple[int, int, int, int]:
    """Zoom out of an ``hw`` image: ``(canvas h, canvas w, top, left)``, the canvas ``ratio`` in [1, max_ratio]
    times larger."""
    h, w = hw
    ratio = rng.uniform(1.0, max_ratio)
    ch, cw = int(h * ratio), int(w * ratio)
    top = int(rng.integers(0, ch - h + 1))
    left = int(rng.integers(0, cw - w + 1))
    return ch, cw, top, left


def expand_boxes(boxes: np.ndarray, placed: tuple[int, int, int, int]) -> np.ndarray:
    """The boxes of an image placed at ``(top, left)`` of the canvas ``placed = (ch, cw, top, left)``."""
    _, _, top, left = placed
    return boxes + np.array([left, top, left, top], np.float32)


def expand(
    image: np.ndarray,  # [H, W, 3] float32
    boxes: np.ndarray,  # [N, 4]
    rng: np.random.Generator,
    max_ratio: float = 4.0,
    fill: tuple[float, float, float] = IMAGENET_MEAN,
) -> tuple[np.ndarray, np.ndarray]:
    """Zoom out: place the image at a random spot of a ``ratio`` times larger mean-filled canvas."""
    placed = draw_expand(rng, image.shape[:2], max_ratio)
    return expand_image(image, placed, fill), expand_boxes(boxes, placed)


def expand_image(image: np.ndarray, placed: tuple[int, int, int, int], fill: tuple[float, float, float]) -> np.ndarray:
    """``image`` on a ``fill``-coloured canvas ``placed = (ch, cw, top, left)``."""
    h, w = image.shape[:2]
    ch, cw, top, left = placed
    canvas = np.empty((ch, cw, 3), np.float32)
    canvas[:] = np.asarray(fill, np.float32)
    canvas[top : top + h, left : left + w] = image
    return canvas


def _iou_with_crops(boxes: np.ndarray, crops: np.ndarray) -> np.ndarray:
    """boxes [N, 4], crops [T, 4] -> IoU [T, N]."""
    lt = np.maximum(crops[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(crops[:, None, 2:], boxes[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)  # [T, N]
    area_b = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
    area_c = (crops[:, 2:] - crops[:, :2]).prod(-1)
    union = area_c[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _centres_inside(boxes: np.ndarray, crops: np.ndarray) -> np.ndarray:
    """``[T, N]`` whether each box centre lies strictly inside each crop ``[T, 4]``."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # [N, 2]
    return (
        (centres[None, :, 0] > crops[:, None, 0])
        & (centres[None, :, 0] < crops[:, None, 2])
        & (centres[None, :, 1] > crops[:, None, 1])
        & (centres[None, :, 1] < crops[:, None, 3])
    )


def draw_crop(
    rng: np.random.Generator,
    hw: tuple[int, int],
    boxes: np.ndarray,  # [N, 4] in the (expanded) image
    min_ious: tuple[float | None, ...] = CROP_MIN_IOUS,
    trials: int = CROP_TRIALS,
) -> tuple[int, int, int, int] | None:
    """SSD IoU-constrained crop ``(x1, y1, x2, y2)`` of an ``hw`` image, or None (the whole image).

    Picks a mode from ``min_ious``; ``None`` keeps the image. Otherwise ``trials`` candidate crops
    (sides 0.3..1 of the image, aspect 0.5..2) are drawn at once and the first one is taken where some
    box has IoU >= the mode's minimum (Caffe-SSD's rule) and at least one box centre lies inside.
    No valid candidate: the whole image. Depends on the boxes, never on the pixels.
    """
    h, w = hw
    mode = min_ious[int(rng.integers(len(min_ious)))]
    if mode is None:
        return None
    cw = rng.uniform(0.3 * w, w, trials)
    chh = rng.uniform(0.3 * h, h, trials)
    left = rng.uniform(0, 1, trials) * (w - cw)
    top = rng.uniform(0, 1, trials) * (h - chh)
    crops = np.floor(np.stack([left, top, left + cw, top + chh], 1))  # [T, 4] integer pixel edges
    aspect = (crops[:, 3] - crops[:, 1]) / np.maximum(crops[:, 2] - crops[:, 0], 1)
    ok = (aspect >= 0.5) & (aspect <= 2.0) & (crops[:, 2] > crops[:, 0]) & (crops[:, 3] > crops[:, 1])
    if len(boxes):
        ok &= (_iou_with_crops(boxes, crops) >= mode).any(1) & _centres_inside(boxes, crops).any(1)
    if not ok.any():
        return None
    x1, y1, x2, y2 = crops[int(np.argmax(ok))].astype(int)
    return int(x1), int(y1), int(x2), int(y2)


def crop_boxes(boxes: np.ndarray, labels: np.ndarray, crop: tuple[int, int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The boxes whose centre lies inside ``crop``, clipped to it, in its pixels; their labels."""
    x1, y1, x2, y2 = crop
    keep = _centres_inside(boxes, np.array([crop], np.float64))[0]
    out = boxes[keep].copy()
    out[:, 0::2] = np.clip(out[:, 0::2], x1, x2) - x1
    out[:, 1::2] = np.clip(out[:, 1::2], y1, y2) - y1
    return out, labels[keep]


def random_crop(
    image: np.ndarray,  # [H, W, 3]
    boxes: np.ndarray,  # [N, 4]
    labels: np.ndarray,  # [N]
    rng: np.random.Generator,
    min_ious: tuple[float | None, ...] = CROP_MIN_IOUS,
    trials: int = CROP_TRIALS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SSD IoU-constrained crop (:func:`draw_crop`, then :func:`crop_boxes`); boxes whose centre is inside are
    kept, clipped to the crop. No valid candidate: image unchanged."""
    crop = draw_crop(rng, image.shape[:2], boxes, min_ious, trials)
    if crop is None:
        return image, boxes, labels
    x1, y1, x2, y2 = crop
    out, lab = crop_boxes(boxes, labels, crop)
    return image[y1:y2, x1:x2], out, lab


def hflip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: ``x1' = W - x2``, ``x2' = W - x1``."""
    return image[:, ::-1], hflip_boxes(boxes, image.shape[1])


def hflip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """The boxes of :func:`hflip` for an image ``width`` pixels wide."""
    out = boxes.copy()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


def resize(
    image: np.ndarray, boxes: np.ndarray, size: int | tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Resize to ``size`` (S x S, or (H, W); aspect not kept, as SSD); returns boxes in its pixels and ``(sy, sx)``."""
    th, tw = as_hw(size)
    out = cv2.resize(np.ascontiguousarray(image), (tw, th), interpolation=cv2.INTER_LINEAR)
    scaled, scale = resize_boxes(boxes, image.shape[:2], size)
    return out, scaled, scale


def resize_boxes(
    boxes: np.ndarray, hw: tuple[int, int], size: int | tuple[int, int]
) -> tuple[np.ndarray, tuple[float, float]]:
    """The boxes of :func:`resize` for an ``hw`` image: in the resized pixels, clipped, float32; and ``(sy, sx)``."""
    th, tw = as_hw(size)
    sy, sx = th / hw[0], tw / hw[1]
    scaled = boxes * np.array([sx, sy, sx, sy], np.float32)
    np.clip(scaled, 0, np.array([tw, th, tw, th], np.float32), out=scaled)
    return scaled.astype(np.float32), (sy, sx)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] float (0..1) or uint8 -> tensor [3, H, W] float32 in [0, 1]."""
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


@dataclass(frozen=True)
class View:
    """One draw of the training augmentation, as values: what :meth:`TrainTransform.draw_view` drew (the only
    consumer of the random generator) and what :meth:`TrainTransform.apply` (pixels and boxes) and
    :meth:`TrainTransform.apply_boxes` (boxes alone) apply. The default is the plain resize."""

    photometric: Photometric | None = None
    expand: tuple[int, int, int, int] | None = None  # (canvas h, canvas w, top, left)
    crop: tuple[int, int, int, int] | None = None  # (x1, y1, x2, y2) in the expanded image
    flipped: bool = False


class EvalTransform:
    """Resize to ``size`` (S x S, or (H, W) for a non-square detector); boxes scaled into its pixels. Its only
    view is the plain resize (``View()``)."""

    pixel_free = True  # every view is the same (a feature cache may hold its features)

    def __init__(self, size: int | tuple[int, int]) -> None:
        h, w = as_hw(size)
        self.size: int | tuple[int, int] = h if h == w else (h, w)

    def draw_view(self, rng: np.random.Generator | None, hw: tuple[int, int], boxes: np.ndarray) -> View:
        return View()

    def apply(
        self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, view: View | None = None
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        img, out, _ = resize(image.astype(np.float32) / 255.0, _empty_boxes(boxes), self.size)
        return to_tensor(img), out, np.asarray(labels, np.int64).reshape(-1)

    def apply_boxes(
        self, hw: tuple[int, int], boxes: np.ndarray, labels: np.ndarray, view: View | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """What :meth:`apply` returns for an ``hw`` image, without the image: (boxes, labels)."""
        return resize_boxes(_empty_boxes(boxes), hw, self.size)[0], np.asarray(labels, np.int64).reshape(-1)

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        return self.apply(image, boxes, labels)


class TrainTransform:
    """The paper's SSD augmentation: photometric distortion, zoom out, IoU-constrained crop, flip, resize.

    :meth:`draw_view` draws a :class:`View` from the ``rng`` it is given (``DetectionDataset`` derives it from
    (seed, epoch, index); without one, the transform's own Generator seeded by ``seed``): it is the only code
    that draws. :meth:`apply` applies a view to an image and its boxes, :meth:`apply_boxes` to the boxes alone
    (the same boxes: the geometry never depends on the pixels). Boxes narrower or shorter than ``min_size``
    S-pixels after resizing are dropped.
    """

    def __init__(
        self,
        size: int,
        seed: int | None = None,
        max_expand: float = 4.0,
        p_expand: float = 0.5,
        p_flip: float = 0.5,
        photometric: bool = True,
        crop_min_ious: tuple[float | None, ...] = CROP_MIN_IOUS,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        min_size: float = 1.0,
    ) -> None:
        self.size = int(size)
        self.max_expand = max_expand
        self.p_expand = p_expand
        self.p_flip = p_flip
        self.photometric = photometric
        self.crop_min_ious = crop_min_ious
        self.mean = mean
        self.min_size = min_size
        self.rng = np.random.default_rng(seed)

    @property
    def pixel_free(self) -> bool:
        """True when two views of an image differ at most by the flip (no photometric distortion, no zoom-out,
        every crop mode keeps the image: the ``flip`` augmentation), so a feature cache keyed by (image,
        flipped) holds every view."""
        return not self.photometric and self.max_expand <= 1 and all(m is None for m in self.crop_min_ious)

    def draw_view(self, rng: np.random.Generator | None, hw: tuple[int, int], boxes: np.ndarray) -> View:
        """The random choices for an ``hw`` image with ``boxes`` (the crop is chosen by their IoU), in the
        order SSD draws them: photometric, zoom out, crop, flip."""
        rng = self.rng if rng is None else rng
        b = _empty_boxes(boxes)
        photometric = draw_photometric(rng) if self.photometric else None
        placed = None
        if self.max_expand > 1 and rng.random() < self.p_expand:
            placed = draw_expand(rng, hw, self.max_expand)
            b, hw = expand_boxes(b, placed), (placed[0], placed[1])
        crop = draw_crop(rng, hw, b, self.crop_min_ious)
        flipped = bool(rng.random() < self.p_flip)
        return View(photometric, placed, crop, flipped)

    def apply(
        self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, view: View
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """``view`` applied to a uint8 ``image [H, W, 3]`` and its boxes: (image [3, S, S], boxes, labels)."""
        img = image.astype(np.float32) / 255.0  # [H, W, 3]
        if view.photometric is not None:
            img = apply_photometric(img, view.photometric)
        if view.expand is not None:
            img = expand_image(img, view.expand, self.mean)
        if view.crop is not None:
            x1, y1, x2, y2 = view.crop
            img = img[y1:y2, x1:x2]
        if view.flipped:
            img = img[:, ::-1]
        b, lab = self.apply_boxes(image.shape[:2], boxes, labels, view)
        pixels = cv2.resize(np.ascontiguousarray(img), (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        return to_tensor(pixels), b, lab

    def apply_boxes(
        self, hw: tuple[int, int], boxes: np.ndarray, labels: np.ndarray, view: View
    ) -> tuple[np.ndarray, np.ndarray]:
        """What :meth:`apply` returns for an ``hw`` image, without the image: (boxes [N, 4] S-pixels, labels)."""
        b = _empty_boxes(boxes).copy()
        lab = np.asarray(labels, np.int64).reshape(-1)
        if view.expand is not None:
            b, hw = expand_boxes(b, view.expand), (view.expand[0], view.expand[1])
        if view.crop is not None:
            x1, y1, x2, y2 = view.crop
            b, lab = crop_boxes(b, lab, view.crop)
            hw = (y2 - y1, x2 - x1)
        if view.flipped:
            b = hflip_boxes(b, hw[1])
        b, _ = resize_boxes(b, hw, self.size)
        keep = ((b[:, 2:] - b[:, :2]) >= self.min_size).all(1)
        return b[keep], lab[keep]

    def __call__(
        self, image: np.ndarray, boxes: np.ndarray, labels: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Draw a view and apply it (:meth:`draw_view`, :meth:`apply`)."""
        return self.apply(image, boxes, labels, self.draw_view(rng, image.shape[:2], boxes))


def build_train_transform(size: int, mode: str) -> TrainTransform | EvalTransform:
    """The training transform of ``data.augment``: "ssd" (the paper's), "flip" (horizontal flip only) or
    "none" (resize only)."""
    if mode == "ssd":
        return TrainTransform(size)
    if mode == "flip":
        return TrainTransform(size, photometric=False, max_expand=1.0, crop_min_ious=(None,))
    if mode == "none":
        return EvalTransform(size)
    raise ValueError(f"unknown augmentation {mode!r}; choose ssd, flip or none")
