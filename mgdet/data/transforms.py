"""SSD-style augmentation and evaluation resizing in numpy/OpenCV.

Train pipeline (each step is a pure function of its inputs and a ``numpy.random.Generator``):
photometric distortion -> zoom-out expand -> IoU-constrained random crop -> horizontal flip ->
resize to ``size x size``. All box maths is vectorized over boxes; images are float32 RGB in [0, 1]
between steps. Both transforms map ``(image uint8 [H,W,3] RGB, boxes [N,4] xyxy px, labels [N])`` to
``(tensor [3,S,S] float32 0..1, boxes [N',4] float32 in S-pixels, labels [N'] int64)``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from mgdet.utils.imagenet import IMAGENET_MEAN

# ImageNet mean and std (mgdet.utils.imagenet): the detector normalizes its input with them (``Detector.mean``
# / ``std``); the expand canvas is filled with the mean (zero after that normalization).
#: SSD crop modes: None keeps the whole image, a number is the minimum IoU some box must have with the crop.
CROP_MIN_IOUS: tuple[float | None, ...] = (None, 0.1, 0.3, 0.5, 0.7, 0.9)
CROP_TRIALS = 50  # candidate crops drawn per call (all at once)


def _empty_boxes(boxes: np.ndarray) -> np.ndarray:
    return np.asarray(boxes, np.float32).reshape(-1, 4)


def photometric_distort(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random brightness, contrast, saturation and hue (each with p=0.5), SSD order.

    image: float32 [H, W, 3] RGB in [0, 1] -> same shape, clipped to [0, 1].
    """
    img = image
    if rng.random() < 0.5:
        img = img + rng.uniform(-32, 32) / 255.0
    contrast_first = rng.random() < 0.5
    contrast = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    sat = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    hue = rng.uniform(-18, 18) if rng.random() < 0.5 else None
    if contrast_first and contrast is not None:
        img = img * contrast
    if sat is not None or hue is not None:
        hsv = cv2.cvtColor(np.clip(img, 0, 1).astype(np.float32), cv2.COLOR_RGB2HSV)  # H in [0, 360)
        if sat is not None:
            hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 1)
        if hue is not None:
            hsv[..., 0] = np.mod(hsv[..., 0] + hue, 360.0)
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not contrast_first and contrast is not None:
        img = img * contrast
    return np.clip(img, 0, 1).astype(np.float32)


def expand(
    image: np.ndarray,  # [H, W, 3] float32
    boxes: np.ndarray,  # [N, 4]
    rng: np.random.Generator,
    max_ratio: float = 4.0,
    fill: tuple[float, float, float] = IMAGENET_MEAN,
) -> tuple[np.ndarray, np.ndarray]:
    """Zoom out: place the image at a random spot of a ``ratio`` times larger mean-filled canvas."""
    h, w = image.shape[:2]
    ratio = rng.uniform(1.0, max_ratio)
    ch, cw = int(h * ratio), int(w * ratio)
    top = int(rng.integers(0, ch - h + 1))
    left = int(rng.integers(0, cw - w + 1))
    canvas = np.empty((ch, cw, 3), np.float32)
    canvas[:] = np.asarray(fill, np.float32)
    canvas[top : top + h, left : left + w] = image
    return canvas, boxes + np.array([left, top, left, top], np.float32)


def _iou_with_crops(boxes: np.ndarray, crops: np.ndarray) -> np.ndarray:
    """boxes [N, 4], crops [T, 4] -> IoU [T, N]."""
    lt = np.maximum(crops[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(crops[:, None, 2:], boxes[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(-1)  # [T, N]
    area_b = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
    area_c = (crops[:, 2:] - crops[:, :2]).prod(-1)
    union = area_c[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def random_crop(
    image: np.ndarray,  # [H, W, 3]
    boxes: np.ndarray,  # [N, 4]
    labels: np.ndarray,  # [N]
    rng: np.random.Generator,
    min_ious: tuple[float | None, ...] = CROP_MIN_IOUS,
    trials: int = CROP_TRIALS,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SSD IoU-constrained crop.

    Picks a mode from ``min_ious``; ``None`` keeps the image. Otherwise ``trials`` candidate crops
    (sides 0.3..1 of the image, aspect 0.5..2) are drawn at once and the first one is taken where some
    box has IoU >= the mode's minimum (Caffe-SSD's rule) and at least one box centre lies inside.
    Boxes whose centre is inside are kept, clipped to the crop. No valid candidate: image unchanged.
    """
    h, w = image.shape[:2]
    mode = min_ious[int(rng.integers(len(min_ious)))]
    if mode is None:
        return image, boxes, labels
    cw = rng.uniform(0.3 * w, w, trials)
    chh = rng.uniform(0.3 * h, h, trials)
    left = rng.uniform(0, 1, trials) * (w - cw)
    top = rng.uniform(0, 1, trials) * (h - chh)
    crops = np.floor(np.stack([left, top, left + cw, top + chh], 1))  # [T, 4] integer pixel edges
    aspect = (crops[:, 3] - crops[:, 1]) / np.maximum(crops[:, 2] - crops[:, 0], 1)
    ok = (aspect >= 0.5) & (aspect <= 2.0) & (crops[:, 2] > crops[:, 0]) & (crops[:, 3] > crops[:, 1])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # [N, 2]
    inside = (
        (centres[None, :, 0] > crops[:, None, 0])
        & (centres[None, :, 0] < crops[:, None, 2])
        & (centres[None, :, 1] > crops[:, None, 1])
        & (centres[None, :, 1] < crops[:, None, 3])
    )  # [T, N]
    if len(boxes):
        ok &= (_iou_with_crops(boxes, crops) >= mode).any(1) & inside.any(1)
    if not ok.any():
        return image, boxes, labels
    t = int(np.argmax(ok))
    x1, y1, x2, y2 = crops[t].astype(int)
    keep = inside[t]
    out = boxes[keep].copy()
    out[:, 0::2] = np.clip(out[:, 0::2], x1, x2) - x1
    out[:, 1::2] = np.clip(out[:, 1::2], y1, y2) - y1
    return image[y1:y2, x1:x2], out, labels[keep]


def hflip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right: ``x1' = W - x2``, ``x2' = W - x1``."""
    return image[:, ::-1], hflip_boxes(boxes, image.shape[1])


def hflip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """The boxes of :func:`hflip` for an image ``width`` pixels wide."""
    out = boxes.copy()
    out[:, 0] = width - boxes[:, 2]
    out[:, 2] = width - boxes[:, 0]
    return out


def resize(image: np.ndarray, boxes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Resize to ``size x size`` (aspect not kept, as SSD); returns boxes in S-pixels and ``(sy, sx)``."""
    out = cv2.resize(np.ascontiguousarray(image), (size, size), interpolation=cv2.INTER_LINEAR)
    scaled, scale = resize_boxes(boxes, image.shape[:2], size)
    return out, scaled, scale


def resize_boxes(boxes: np.ndarray, hw: tuple[int, int], size: int) -> tuple[np.ndarray, tuple[float, float]]:
    """The boxes of :func:`resize` for an ``hw`` image: S-pixels, clipped, float32; and ``(sy, sx)``."""
    sy, sx = size / hw[0], size / hw[1]
    scaled = boxes * np.array([sx, sy, sx, sy], np.float32)
    np.clip(scaled, 0, size, out=scaled)
    return scaled.astype(np.float32), (sy, sx)


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] float (0..1) or uint8 -> tensor [3, H, W] float32 in [0, 1]."""
    if image.dtype == np.uint8:
        image = image.astype(np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32))


class EvalTransform:
    """Resize to ``size x size``; boxes scaled into S-pixels. ``rng`` is accepted and unused; ``view`` (a dict)
    receives ``flipped=False``."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __call__(
        self,
        image: np.ndarray,
        boxes: np.ndarray,
        labels: np.ndarray,
        rng: np.random.Generator | None = None,
        view: dict | None = None,
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        if view is not None:
            view["flipped"] = False
        img, out, _ = resize(image.astype(np.float32) / 255.0, _empty_boxes(boxes), self.size)
        return to_tensor(img), out, np.asarray(labels, np.int64).reshape(-1)

    pixel_free = True  # the boxes never depend on the pixels (see TrainTransform.boxes_only)

    def boxes_only(
        self,
        hw: tuple[int, int],
        boxes: np.ndarray,
        labels: np.ndarray,
        rng: np.random.Generator | None = None,
        view: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """What ``__call__`` returns for an ``hw`` image, without the image: (boxes, labels)."""
        if view is not None:
            view["flipped"] = False
        return resize_boxes(_empty_boxes(boxes), hw, self.size)[0], np.asarray(labels, np.int64).reshape(-1)


class TrainTransform:
    """The paper's SSD augmentation.

    Randomness comes only from the ``rng`` given to ``__call__`` (``DetectionDataset`` derives it from
    (seed, epoch, index)); without one, the transform's own Generator seeded by ``seed`` is used.
    Boxes narrower or shorter than ``min_size`` S-pixels after resizing are dropped. A ``view`` dict given
    to ``__call__`` receives ``flipped`` (whether the horizontal flip was applied).
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

    def __call__(
        self,
        image: np.ndarray,
        boxes: np.ndarray,
        labels: np.ndarray,
        rng: np.random.Generator | None = None,
        view: dict | None = None,
    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        rng = self.rng if rng is None else rng
        img = image.astype(np.float32) / 255.0  # [H, W, 3]
        b = _empty_boxes(boxes).copy()
        lab = np.asarray(labels, np.int64).reshape(-1)
        if self.photometric:
            img = photometric_distort(img, rng)
        if self.max_expand > 1 and rng.random() < self.p_expand:
            img, b = expand(img, b, rng, self.max_expand, self.mean)
        img, b, lab = random_crop(img, b, lab, rng, self.crop_min_ious)
        flipped = bool(rng.random() < self.p_flip)
        if flipped:
            img, b = hflip(img, b)
        if view is not None:  # what a feature cache needs to know about this view (see DetectionDataset)
            view["flipped"] = flipped
        img, b, _ = resize(img, b, self.size)
        keep = ((b[:, 2:] - b[:, :2]) >= self.min_size).all(1)
        return to_tensor(img), b[keep], lab[keep]

    @property
    def pixel_free(self) -> bool:
        """True when the boxes never depend on the pixels (no photometric distortion, no zoom-out, every
        crop mode keeps the image: the ``flip`` augmentation), so :meth:`boxes_only` can stand for a call."""
        return not self.photometric and self.max_expand <= 1 and all(m is None for m in self.crop_min_ious)

    def boxes_only(
        self,
        hw: tuple[int, int],
        boxes: np.ndarray,
        labels: np.ndarray,
        rng: np.random.Generator | None = None,
        view: dict | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """What ``__call__`` returns for an ``hw`` image, without the image: (boxes, labels), drawing the same
        random numbers in the same order. Only for a :attr:`pixel_free` transform."""
        if not self.pixel_free:
            raise ValueError("boxes_only needs a transform whose boxes do not depend on the pixels (augment: flip)")
        rng = self.rng if rng is None else rng
        b = _empty_boxes(boxes).copy()
        lab = np.asarray(labels, np.int64).reshape(-1)
        rng.integers(len(self.crop_min_ious))  # random_crop's mode draw; every mode keeps the image
        flipped = bool(rng.random() < self.p_flip)
        if flipped:
            b = hflip_boxes(b, hw[1])
        if view is not None:
            view["flipped"] = flipped
        b, _ = resize_boxes(b, hw, self.size)
        keep = ((b[:, 2:] - b[:, :2]) >= self.min_size).all(1)
        return b[keep], lab[keep]


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
