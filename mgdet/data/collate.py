"""From dataset samples to padded batches, and reproducible DataLoaders.

Reproducibility: the augmentation of sample ``index`` in epoch ``epoch`` uses
``np.random.default_rng([seed, epoch, index])`` (see :class:`DetectionDataset`), and the sample order
is a function of ``(seed, epoch)`` (:class:`EpochRandomSampler` / ``DistributedSampler``). Calling
:func:`set_loader_epoch` at the start of each epoch therefore gives a resumed run exactly the batches
of the original run, whatever the number of workers. Workers are not persistent, so each epoch's
workers see the epoch set on the dataset.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torch.utils.data.distributed import DistributedSampler

from mgdet.catalog import as_hw
from mgdet.data.errors import DatasetError
from mgdet.data.transforms import View


@dataclass
class FailedSample:
    """An image that passed the header scan but failed to decode, under ``data.on_error=skip``."""

    image_id: int
    message: str  # the DatasetError, naming the file


@dataclass
class DetectionBatch:
    """A padded batch: ``gt_labels == -1`` marks padding (an image may have no objects). ``failed`` lists the
    samples of this batch that were dropped because their image failed to decode (``data.on_error=skip``);
    a batch may then hold fewer images, or none."""

    images: torch.Tensor  # [B, 3, S, S] float32 0..1
    gt_boxes: torch.Tensor  # [B, G, 4] float32, S-pixels
    gt_labels: torch.Tensor  # [B, G] int64, -1 = padding
    metas: list[dict]  # image_id, orig_size (h, w), scale (sy, sx), gt (original-pixel annotation)
    failed: list[FailedSample] = field(default_factory=list)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> DetectionBatch:
        """Move the tensors to ``device`` (metas stay on the host)."""
        return DetectionBatch(
            self.images.to(device, non_blocking=non_blocking),
            self.gt_boxes.to(device, non_blocking=non_blocking),
            self.gt_labels.to(device, non_blocking=non_blocking),
            self.metas,
            self.failed,
        )

    def __len__(self) -> int:
        return self.images.shape[0]


class DetectionDataset(Dataset):
    """Wraps a loader (VOC/COCO/YOLO) with a transform; samples are
    ``(image [3,S,S], boxes [N,4] S-px, labels [N], meta)``.

    Ignored boxes (VOC difficult / COCO crowd) are never training targets; ``meta["gt"]`` keeps the full
    original-pixel annotation (boxes, labels, ignore) for evaluation, ``meta["view"]`` is ``(index, flipped)``
    (all a backbone feature cache needs to tell the views of the flip-only transform apart). With ``train=True`` the
    transform receives ``np.random.default_rng([seed, epoch, index])``; call ``set_epoch`` each epoch.
    """

    def __init__(self, base_dataset: Dataset, transform: Callable, train: bool, seed: int = 0) -> None:
        self.base = base_dataset
        self.transform = transform
        self.train = train
        self.seed = int(seed)
        self.epoch = 0
        # views ``(index, flipped)`` whose pixels nobody needs (a backbone feature cache holds their features),
        # with the decoded image's (height, width): such a sample skips decoding (see __getitem__)
        self.pixel_free_views: dict[tuple[int, bool], tuple[int, int]] = {}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentations ``__getitem__`` reproduces."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def sample_rng(self, index: int) -> np.random.Generator:
        """The Generator that drives the augmentation of ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray, dict] | FailedSample:
        if self.pixel_free_views and self.train and getattr(self.transform, "pixel_free", False):
            sample = self._without_pixels(index)
            if sample is not None:
                return sample
        try:
            image, target = self.base[index]
        except DatasetError as e:  # the header scan passed, the pixels do not decode
            if getattr(self.base, "on_error", "raise") != "skip":
                raise
            return FailedSample(int(self.base.image_info(index)["image_id"]), str(e))
        h, w = image.shape[:2]
        keep = ~np.asarray(target["ignore"], bool)
        boxes, labels = target["boxes"][keep], target["labels"][keep]
        view = self._view(index, (h, w), boxes)
        tensor, boxes, labels = self.transform.apply(image, boxes, labels, view)
        return tensor, boxes, labels, _meta(index, target, view, (h, w), tuple(tensor.shape[-2:]))

    def _view(self, index: int, hw: tuple[int, int], boxes: np.ndarray) -> View:
        """This epoch's augmentation of ``index`` (the plain resize for evaluation)."""
        return self.transform.draw_view(self.sample_rng(index), hw, boxes) if self.train else View()

    def _without_pixels(self, index: int) -> tuple[torch.Tensor, np.ndarray, np.ndarray, dict] | None:
        """The sample of ``index`` with a zero image, when its view is in ``pixel_free_views``: the same boxes,
        labels, view and meta as ``__getitem__`` (the same :class:`View`, applied to the boxes alone), no decoding.
        None when this epoch's view of ``index`` is not there."""
        # the image's size does not depend on the flip: either cached view of ``index`` gives it
        hw = self.pixel_free_views.get((int(index), False)) or self.pixel_free_views.get((int(index), True))
        if hw is None or not hasattr(self.base, "target"):
            return None
        target = self.base.target(index)
        keep = ~np.asarray(target["ignore"], bool)
        view = self._view(index, hw, target["boxes"][keep])  # the same view __getitem__ draws
        if (int(index), view.flipped) not in self.pixel_free_views:
            return None  # this epoch draws the view that is not cached: decode
        boxes, labels = self.transform.apply_boxes(hw, target["boxes"][keep], target["labels"][keep], view)
        h, w = as_hw(self.transform.size)
        return torch.zeros(3, h, w), boxes, labels, _meta(index, target, view, hw, (h, w))


def _meta(index: int, target: dict, view: View, hw: tuple[int, int], size: tuple[int, int]) -> dict:
    """``meta`` of a sample: image id, view ``(index, flipped)``, original ``hw``, scale to the network's
    ``size``, the full original-pixel annotation."""
    return {
        "image_id": int(target["image_id"]),
        "view": (int(index), view.flipped),
        "orig_size": hw,
        "scale": (size[0] / hw[0], size[1] / hw[1]),
        "gt": {"boxes": target["boxes"], "labels": target["labels"], "ignore": target["ignore"]},
    }


def collate_detections(
    samples: list[tuple[torch.Tensor, np.ndarray, np.ndarray, dict] | FailedSample],
) -> DetectionBatch:
    """Stack images and pad GT to ``G = max(1, max objects)`` with label -1 (boxes 0); failed samples are
    listed in ``failed`` and left out."""
    failed = [b for b in samples if isinstance(b, FailedSample)]
    batch = [b for b in samples if not isinstance(b, FailedSample)]
    if not batch:
        no_gt = torch.full((0, 1), -1, dtype=torch.int64)
        return DetectionBatch(torch.zeros(0, 3, 1, 1), torch.zeros(0, 1, 4), no_gt, [], failed)
    images = torch.stack([b[0] for b in batch])  # [B, 3, S, S]
    g = max([1] + [len(b[2]) for b in batch])
    gt_boxes = torch.zeros((len(batch), g, 4), dtype=torch.float32)
    gt_labels = torch.full((len(batch), g), -1, dtype=torch.int64)
    for i, (_, boxes, labels, _) in enumerate(batch):
        n = len(labels)
        if n:
            gt_boxes[i, :n] = torch.as_tensor(np.asarray(boxes, np.float32).reshape(n, 4))
            gt_labels[i, :n] = torch.as_tensor(np.asarray(labels, np.int64))
    return DetectionBatch(images, gt_boxes, gt_labels, [b[3] for b in batch], failed)


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: seed numpy/random from torch's per-worker seed; one cv2 thread."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)  # noqa: NPY002 (seeds the legacy global for third-party code)
    random.seed(worker_seed)
    cv2.setNumThreads(1)


class EpochRandomSampler(Sampler[int]):
    """Shuffled indices that depend only on ``(seed, epoch)``: a single-process DistributedSampler."""

    def __init__(self, data_source: Dataset, seed: int = 0) -> None:
        self.n = len(data_source)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + 1_000_003 * self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self) -> int:
        return self.n


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    seed: int,
    distributed: bool = False,
    drop_last: bool = False,
) -> DataLoader:
    """DataLoader with ``collate_detections``, seeded workers and an epoch-aware sampler
    (``DistributedSampler`` when ``distributed``). Call :func:`set_loader_epoch` before each epoch."""
    generator = torch.Generator().manual_seed(int(seed))
    if distributed:
        sampler: Sampler[int] | None = DistributedSampler(dataset, shuffle=shuffle, seed=int(seed), drop_last=drop_last)
    elif shuffle:
        sampler = EpochRandomSampler(dataset, seed)
    else:
        sampler = None
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_detections,
        worker_init_fn=seed_worker,
        generator=generator,
        pin_memory=torch.cuda.is_available(),
        drop_last=drop_last,
        persistent_workers=False,
    )
    loader.mgdet_seed = int(seed)  # read by set_loader_epoch
    return loader


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Set the epoch on the loader's sampler and dataset (order and augmentations follow it)."""
    for obj in (loader.sampler, loader.dataset):
        if hasattr(obj, "set_epoch"):
            obj.set_epoch(epoch)
    seed = getattr(loader, "mgdet_seed", None)
    if loader.generator is not None and seed is not None:  # worker base seeds follow (seed, epoch) too
        loader.generator.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))
