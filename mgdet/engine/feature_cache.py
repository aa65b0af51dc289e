"""A cache of backbone feature maps for training with a frozen backbone (``train.feature_cache_mb``).

With every backbone stage frozen (weights and BatchNorm statistics) and an augmentation whose views are
finitely many (``data.augment: flip`` or ``none``), the backbone's output for a training sample is a pure
function of ``(image index, flipped)``. Computing it once per view and reusing it in every later epoch skips
the backbone's forward pass, which is about half of a training step of the CPU benchmark recipe
(``benchmarks/model_speed.py``). The neck and head see the same tensors as without the cache, so training
takes the same path (up to floating-point differences of batched convolutions).

The cache keeps views until ``max_bytes`` is reached; later views are computed each time they are drawn.
It lives in the process's memory only: a resumed run rebuilds it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

View = tuple[int, bool]  # (dataset index, horizontally flipped)


class FeatureCache:
    """Backbone outputs per training view; ``features(det, images, views)`` is the cached
    ``det.backbone_features(images)``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.store: dict[View, tuple[Tensor, ...]] = {}
        self.sizes: dict[View, tuple[int, int]] = {}  # decoded (height, width) of each cached view's image
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self.store)

    @torch.no_grad()
    def features(
        self, det, images: Tensor, views: Sequence[View], sizes: Sequence[tuple[int, int]] | None = None
    ) -> list[Tensor]:
        """``images [B, 3, H, W]`` -> the backbone's maps ``[B, C_l, H_l, W_l]`` per level, computing only
        the views not cached yet (in one batch) and caching them while the budget allows. ``sizes``: each
        sample's original image (height, width), kept for the cached views (:attr:`sizes`: a data loader
        need not decode those images again, ``DetectionDataset.pixel_free_views``)."""
        if len(views) != images.shape[0]:
            raise ValueError(f"{len(views)} views for a batch of {images.shape[0]} images")
        missing = [i for i, v in enumerate(views) if v not in self.store]
        fresh: dict[int, tuple[Tensor, ...]] = {}
        if missing:
            maps = det.backbone_features(images[missing])  # per level [M, C, h, w]
            for j, i in enumerate(missing):
                fresh[i] = tuple(m[j].contiguous() for m in maps)  # [C, h, w] each, own storage
            for i, item in fresh.items():
                size = sum(t.numel() * t.element_size() for t in item)
                if views[i] not in self.store and self.bytes + size <= self.max_bytes:
                    self.store[views[i]] = item
                    self.bytes += size
                    if sizes is not None:
                        self.sizes[views[i]] = (int(sizes[i][0]), int(sizes[i][1]))
        self.misses += len(missing)
        self.hits += len(views) - len(missing)
        per_sample = [fresh[i] if i in fresh else self.store[v] for i, v in enumerate(views)]
        return [torch.stack([s[level] for s in per_sample]) for level in range(len(per_sample[0]))]

    def summary(self) -> str:
        """One line for the end of training: views held, memory, hit rate."""
        total = self.hits + self.misses
        rate = self.hits / total if total else 0.0
        return (
            f"backbone feature cache: {len(self.store)} views, {self.bytes / 2**20:.0f} MiB "
            f"(budget {self.max_bytes / 2**20:.0f}), {rate:.0%} of {total} samples served from it"
        )


def backbone_is_frozen(det) -> bool:
    """True when no backbone parameter trains and every backbone BatchNorm is frozen (eval statistics)."""
    params_frozen = all(not p.requires_grad for p in det.backbone.parameters())
    bns = [m for m in det.backbone.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    return params_frozen and all(getattr(m, "mgdet_frozen", False) for m in bns)
