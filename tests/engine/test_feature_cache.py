"""The backbone feature cache (train.feature_cache_mb): same features, same training, bounded memory."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from conftest import tiny_config

from mgdet.data import DetectionDataset
from mgdet.data.transforms import EvalTransform, build_train_transform
from mgdet.engine.builders import build_dataset, freeze_backbone_stages, keep_frozen_bn_eval
from mgdet.engine.config import ConfigError, from_dict
from mgdet.engine.feature_cache import FeatureCache, backbone_is_frozen
from mgdet.engine.train import train
from mgdet.models import build_detector


def _frozen_detector(stages: int = 5):
    torch.manual_seed(0)
    det = build_detector("retinanet", "mobilenet_v2", 3, 64, neck_width=16, head_width=16)
    freeze_backbone_stages(det, "mobilenet_v2", stages)
    det.train()
    keep_frozen_bn_eval(det)
    return det


def test_forward_is_backbone_then_forward_features():
    det = _frozen_detector()
    x = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = det(x)
        split = det.forward_features(det.backbone_features(x), (64, 64))
    assert whole.keys() == split.keys()
    assert all(torch.equal(whole[k], split[k]) for k in whole)


def test_cache_serves_the_same_features_and_counts():
    det = _frozen_detector()
    gen = torch.Generator().manual_seed(2)
    imgs = torch.rand(4, 3, 64, 64, generator=gen)
    cache = FeatureCache(max_bytes=2**30)
    first = cache.features(det, imgs[:2], [(0, False), (1, False)])
    assert (cache.hits, cache.misses, len(cache)) == (0, 2, 2)
    # a batch mixing two cached views (in another order) and two new ones
    batch = torch.stack([imgs[1], imgs[2], imgs[0], imgs[3]])
    got = cache.features(det, batch, [(1, False), (2, False), (0, False), (2, True)])
    assert (cache.hits, cache.misses, len(cache)) == (2, 4, 4)
    with torch.no_grad():
        ref = det.backbone_features(batch)
    for level, (g, r) in enumerate(zip(got, ref)):
        assert g.shape == r.shape
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-5)
        assert torch.equal(g[0], first[level][1]) and torch.equal(g[2], first[level][0])  # served, not recomputed
    per_view = sum(t[0].numel() * 4 for t in first)
    assert cache.bytes == 4 * per_view


def test_cache_budget_and_flip_views():
    det = _frozen_detector()
    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    probe = FeatureCache(max_bytes=2**30)
    probe.features(det, img, [(0, False)])
    one_view = probe.bytes
    cache = FeatureCache(max_bytes=one_view)  # room for exactly one view
    cache.features(det, torch.cat([img, img.flip(-1)]), [(0, False), (0, True)])
    assert len(cache) == 1 and cache.bytes == one_view
    cache.features(det, img.flip(-1), [(0, True)])  # did not fit: computed again, not served
    assert (cache.hits, cache.misses) == (0, 3)
    cache.features(det, img, [(0, False)])
    assert (cache.hits, cache.misses) == (1, 3)
    assert "1 views" in cache.summary() and "25%" in cache.summary()
    with pytest.raises(ValueError, match="2 views for a batch of 1"):
        cache.features(det, img, [(0, False), (1, False)])


def test_backbone_is_frozen():
    assert backbone_is_frozen(_frozen_detector(5))
    assert not backbone_is_frozen(_frozen_detector(3))


def test_dataset_reports_the_view(tiny_dataset):
    """``meta["view"] = (index, flipped)`` says exactly which view the flip-only transform produced."""
    base = build_dataset(from_dict(tiny_config(tiny_dataset, tiny_dataset / "unused")).data, train=True)
    ds = DetectionDataset(base, build_train_transform(64, "flip"), train=True, seed=0)
    resize_only = EvalTransform(64)
    flips = []
    for i in range(len(ds)):
        img, boxes, _, meta = ds[i]
        assert meta["view"][0] == i
        flipped = meta["view"][1]
        flips.append(flipped)
        src, target = base[i]
        src_boxes = target["boxes"][~np.asarray(target["ignore"], bool)]
        if flipped:
            w = src.shape[1]
            src = src[:, ::-1]
            src_boxes = np.stack([w - src_boxes[:, 2], src_boxes[:, 1], w - src_boxes[:, 0], src_boxes[:, 3]], 1)
        ref, ref_boxes, _ = resize_only(src, src_boxes, np.zeros(len(src_boxes), np.int64))
        assert torch.equal(img, ref)
        np.testing.assert_allclose(boxes, ref_boxes, atol=1e-4)
    assert any(flips) and not all(flips)
    assert DetectionDataset(base, resize_only, train=False)[0][3]["view"] == (0, False)


def _history(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_training_with_the_cache_takes_the_same_path(tiny_dataset, tmp_path, monkeypatch):
    """Four epochs over the 16 training images (32 views): a good share of the samples is served from the
    cache, and the losses and assignment statistics match the run without it."""
    import mgdet.engine.train as train_module

    made: list[FeatureCache] = []

    class Recorded(FeatureCache):
        def __init__(self, max_bytes: int) -> None:
            super().__init__(max_bytes)
            made.append(self)

    monkeypatch.setattr(train_module, "FeatureCache", Recorded)
    undecoded = []
    real = DetectionDataset._without_pixels

    def counting(self, index):
        sample = real(self, index)
        undecoded.append(sample is not None)
        return sample

    monkeypatch.setattr(DetectionDataset, "_without_pixels", counting)
    rows = {}
    for mb in (0, 64):
        data = tiny_config(tiny_dataset, tmp_path / f"c{mb}", epochs=4, eval_interval=0, strategy="iou",
                           channels_last=True, feature_cache_mb=mb)  # fmt: skip
        data["data"]["augment"] = "flip"
        data["model"]["frozen_stages"] = 5
        cfg = from_dict(data)
        train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)
        rows[mb] = _history(tmp_path / f"c{mb}" / "history.csv")
    assert len(rows[0]) == len(rows[64]) == 4
    assert len(made) == 1 and made[0].hits + made[0].misses == 64 and made[0].hits >= 16
    assert made[0].misses == len(made[0]) <= 32  # every view computed once, then served
    assert sum(undecoded) == made[0].hits > 0  # the loader decoded no cached view's image
    for a, b in zip(rows[0], rows[64]):
        for key in ("loss", "loss_cls", "loss_reg", "pos_cls_per_gt", "pos_score_median"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-4, abs=1e-6), key


def test_cache_config_errors(tiny_dataset, tmp_path):
    base = tiny_config(tiny_dataset, tmp_path / "r", epochs=1, max_iters=1, eval_interval=0, feature_cache_mb=64)
    with pytest.raises(ConfigError, match="data.augment flip or none"):
        from_dict({**base, "data": {**base["data"], "augment": "ssd"}})
    with pytest.raises(ConfigError, match="feature_cache_mb must be >= 0"):
        from_dict({**base, "train": {**base["train"], "feature_cache_mb": -1}})
    cfg = from_dict({**base, "data": {**base["data"], "augment": "flip"}})
    cfg.model.frozen_stages = 3
    with pytest.raises(ConfigError, match=r"whole backbone frozen: set model.frozen_stages: 5 \(now 3\)"):
        train(cfg, progress=False, tensorboard=False, evaluate_at_end=False)


@pytest.mark.parametrize("augment", ["flip", "none"])
def test_a_cached_view_is_the_same_sample_without_decoding(tiny_dataset, augment, monkeypatch):
    """pixel_free_views: the sample of a cached view has the same boxes, labels, view and meta as the decoded
    one (the same random draws), a zero image of the same shape, and its image file is never read; a view
    not listed is decoded as usual."""
    base = build_dataset(from_dict(tiny_config(tiny_dataset, tiny_dataset / "unused")).data, train=True)
    transform = build_train_transform(64, augment)
    assert transform.pixel_free
    full = DetectionDataset(base, transform, train=True, seed=5)
    fast = DetectionDataset(base, transform, train=True, seed=5)
    reads: list[int] = []
    decode = type(base).__getitem__
    for epoch in range(3):
        full.set_epoch(epoch)
        fast.set_epoch(epoch)
        ref = [full[i] for i in range(len(full))]
        fast.pixel_free_views = {m["view"]: m["orig_size"] for _, _, _, m in ref[::2]}  # every other sample
        reads.clear()
        with monkeypatch.context() as m:
            m.setattr(type(base), "__getitem__", lambda self, i: reads.append(i) or decode(self, i))
            got = [fast[i] for i in range(len(fast))]
        assert reads == list(range(1, len(fast), 2))  # only the samples whose view is not listed were decoded
        for i, ((img_r, box_r, lab_r, meta_r), (img_g, box_g, lab_g, meta_g)) in enumerate(zip(ref, got)):
            assert np.array_equal(box_r, box_g) and box_r.dtype == box_g.dtype
            assert np.array_equal(lab_r, lab_g)
            assert {k: v for k, v in meta_r.items() if k != "gt"} == {k: v for k, v in meta_g.items() if k != "gt"}
            assert img_g.shape == img_r.shape
            assert torch.equal(img_g, img_r) if i % 2 else not img_g.any()


def test_a_view_gives_the_same_boxes_with_or_without_the_pixels():
    """Augmentation is a value (issue 23, item 5): draw_view is the only consumer of the generator, and apply /
    apply_boxes give identical boxes for every mode, so cached views can never get other boxes (there is no
    replay of the random draws any more)."""
    rng = np.random.default_rng(7)
    for mode in ("ssd", "flip", "none"):
        tf = build_train_transform(64, mode)
        for seed in range(40):
            h, w = int(rng.integers(40, 120)), int(rng.integers(40, 120))
            image = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            xy = rng.uniform(0, [w - 8, h - 8], (5, 2))
            boxes = np.concatenate([xy, xy + rng.uniform(4, 40, (5, 2))], 1).clip(0, [w, h, w, h]).astype(np.float32)
            labels = rng.integers(0, 3, 5)
            view = tf.draw_view(np.random.default_rng(seed), (h, w), boxes)
            again = tf.draw_view(np.random.default_rng(seed), (h, w), boxes)
            assert view == again  # a value: the same generator state gives the same view
            _, b_pixels, l_pixels = tf.apply(image, boxes, labels, view)
            b_alone, l_alone = tf.apply_boxes((h, w), boxes, labels, view)
            assert np.array_equal(b_pixels, b_alone) and np.array_equal(l_pixels, l_alone)
    assert not build_train_transform(64, "ssd").pixel_free and build_train_transform(64, "flip").pixel_free
