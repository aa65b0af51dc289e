"""SSD-style transforms: boxes follow the image content, flip maths, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mgdet.data.transforms import (
    EvalTransform,
    TrainTransform,
    expand,
    hflip,
    photometric_distort,
    random_crop,
    resize,
)

S = 64


def painted_image() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey 120x160 image with a pure red rectangle covering pixels x 40..99, y 30..79."""
    img = np.full((120, 160, 3), 128, np.uint8)
    img[30:80, 40:100] = (255, 0, 0)
    return img, np.array([[40, 30, 100, 80]], np.float32), np.array([3], np.int64)


def red_mask(t: torch.Tensor) -> np.ndarray:
    r, g, b = t.numpy()
    return (r > 0.75) & (g < 0.25) & (b < 0.25)


@pytest.mark.parametrize("seed", range(40))
def test_box_encloses_painted_rectangle_after_augmentation(seed: int) -> None:
    img, boxes, labels = painted_image()
    tr = TrainTransform(S, photometric=False)
    t, out, lab = tr(img, boxes, labels, rng=np.random.default_rng(seed))
    assert t.shape == (3, S, S) and t.dtype == torch.float32
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0
    assert out.dtype == np.float32 and lab.dtype == np.int64
    assert ((out >= 0) & (out <= S)).all()
    if len(out) == 0:  # crop dropped the box (centre outside): nothing to check
        return
    assert lab.tolist() == [3]
    ys, xs = np.nonzero(red_mask(t))
    assert len(xs) > 0
    x1, y1, x2, y2 = out[0]
    # Every red pixel is inside the box (1 px slack for interpolation) ...
    assert xs.min() >= x1 - 1 and xs.max() + 1 <= x2 + 1 and ys.min() >= y1 - 1 and ys.max() + 1 <= y2 + 1
    # ... and the box is tight around the red pixels (2 px slack: resizing blurs the edges).
    assert x1 >= xs.min() - 2 and x2 <= xs.max() + 1 + 2 and y1 >= ys.min() - 2 and y2 <= ys.max() + 1 + 2


@pytest.mark.parametrize("seed", range(10))
def test_full_pipeline_boxes_in_range_and_deterministic(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    img = rng.integers(0, 255, (90, 130, 3), dtype=np.uint8)
    x1y1 = rng.uniform(0, 60, (5, 2))
    boxes = np.concatenate([x1y1, x1y1 + rng.uniform(5, 60, (5, 2))], 1).astype(np.float32)
    boxes[:, 0::2] = boxes[:, 0::2].clip(0, 130)
    boxes[:, 1::2] = boxes[:, 1::2].clip(0, 90)
    labels = np.arange(5)
    tr = TrainTransform(S)
    a = tr(img, boxes, labels, rng=np.random.default_rng(seed))
    b = tr(img, boxes, labels, rng=np.random.default_rng(seed))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    assert ((a[1] >= 0) & (a[1] <= S)).all() and (a[1][:, 2:] - a[1][:, :2] >= 1.0).all()
    assert set(a[2].tolist()) <= set(labels.tolist())
    seeded = TrainTransform(S, seed=seed)
    assert torch.equal(seeded(img, boxes, labels)[0], TrainTransform(S, seed=seed)(img, boxes, labels)[0])


def test_different_seeds_give_different_augmentations() -> None:
    img, boxes, labels = painted_image()
    outs = {TrainTransform(S)(img, boxes, labels, rng=np.random.default_rng(s))[0].sum().item() for s in range(8)}
    assert len(outs) > 4


def test_empty_boxes_are_legal() -> None:
    img = np.zeros((30, 40, 3), np.uint8)
    for s in range(10):
        t, b, lab = TrainTransform(S)(img, np.zeros((0, 4)), np.zeros(0), rng=np.random.default_rng(s))
        assert t.shape == (3, S, S) and b.shape == (0, 4) and lab.shape == (0,)
    t, b, lab = EvalTransform(S)(img, np.zeros((0, 4)), np.zeros(0))
    assert b.shape == (0, 4) and lab.dtype == np.int64


def test_hflip_hand_checked() -> None:
    img = np.zeros((4, 10, 3), np.float32)
    img[:, 1:4] = 1.0  # columns 1..3 -> box x in [1, 4)
    out_img, out = hflip(img, np.array([[1, 0, 4, 4]], np.float32))
    np.testing.assert_array_equal(out, [[6, 0, 9, 4]])  # x1' = 10 - 4, x2' = 10 - 1
    assert out_img[0, 6:9, 0].tolist() == [1, 1, 1] and out_img[0, 5, 0] == 0 and out_img[0, 9, 0] == 0


def test_expand_offsets_boxes_and_fills_mean() -> None:
    img = np.ones((10, 20, 3), np.float32)
    canvas, out = expand(img, np.array([[2, 3, 5, 7]], np.float32), np.random.default_rng(0), 3.0, (0.1, 0.2, 0.3))
    ys, xs = np.nonzero(canvas[..., 0] == 1.0)
    left, top = xs.min(), ys.min()
    np.testing.assert_array_equal(out, [[2 + left, 3 + top, 5 + left, 7 + top]])
    assert canvas.shape[0] >= 10 and np.allclose(canvas[canvas[..., 0] != 1.0], [0.1, 0.2, 0.3])


def test_random_crop_keeps_only_boxes_with_centre_inside() -> None:
    img = np.zeros((100, 100, 3), np.float32)
    boxes = np.array([[0, 0, 10, 10], [40, 40, 60, 60], [85, 85, 100, 100]], np.float32)
    labels = np.array([0, 1, 2])
    for s in range(30):
        crop, out, lab = random_crop(img, boxes, labels, np.random.default_rng(s), (0.1,))
        assert len(out) >= 1 and len(out) == len(lab)
        h, w = crop.shape[:2]
        assert ((out[:, 0::2] >= 0) & (out[:, 0::2] <= w)).all() and ((out[:, 1::2] >= 0) & (out[:, 1::2] <= h)).all()


def test_resize_and_eval_transform_scale() -> None:
    img = np.zeros((50, 100, 3), np.uint8)
    t, b, lab = EvalTransform(S)(img, np.array([[10, 5, 50, 25]], np.float32), np.array([2]))
    assert t.shape == (3, S, S)
    np.testing.assert_allclose(b, [[6.4, 6.4, 32.0, 32.0]], rtol=1e-6)
    _, _, scale = resize(img.astype(np.float32), np.zeros((0, 4), np.float32), S)
    assert scale == (S / 50, S / 100)


def test_photometric_stays_in_range() -> None:
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 1, (16, 16, 3)).astype(np.float32)
    for s in range(20):
        out = photometric_distort(img, np.random.default_rng(s))
        assert out.dtype == np.float32 and out.shape == img.shape and out.min() >= 0 and out.max() <= 1


def test_augment_modes() -> None:
    from mgdet.data.transforms import EvalTransform, build_train_transform
    from mgdet.engine.config import augment_mode

    assert [augment_mode(v) for v in (True, False, "flip")] == ["ssd", "none", "flip"]
    assert isinstance(build_train_transform(64, "none"), EvalTransform)
    image = np.zeros((32, 48, 3), np.uint8)
    image[4:12, 2:10] = 255  # a white block on the left
    boxes = np.array([[2.0, 4.0, 10.0, 12.0]], np.float32)
    flip = build_train_transform(96, "flip")
    seen = set()
    for seed in range(12):
        img, b, lab = flip(image, boxes, np.array([1]), np.random.default_rng(seed))
        # only flip + resize: the box is the original (or its mirror) scaled 2x / 3x, and the pixels follow
        assert b.tolist() in ([[4.0, 12.0, 20.0, 36.0]], [[76.0, 12.0, 92.0, 36.0]]) and lab.tolist() == [1]
        x0 = int(b[0, 0])
        assert float(img[:, 14:34, x0 + 2 : x0 + 14].mean()) == pytest.approx(1.0)
        seen.add(x0)
    assert seen == {4, 76}
    with pytest.raises(ValueError, match="unknown augmentation"):
        build_train_transform(64, "mosaic")
