"""Batching: padding with -1, empty images, ignore handling, reproducible loaders."""

from __future__ import annotations

import numpy as np
import torch

from mgdet.data import (
    DetectionDataset,
    EvalTransform,
    TrainTransform,
    collate_detections,
    make_loader,
    set_loader_epoch,
)

S = 32


class ListDataset(torch.utils.data.Dataset):
    """In-memory stand-in for a loader: image i has i % 3 objects, the last one ignored when i % 3 == 2."""

    def __init__(self, n: int = 10) -> None:
        rng = np.random.default_rng(0)
        self.items = []
        for i in range(n):
            k = i % 3
            boxes = np.array([[2, 2, 20, 24], [10, 5, 30, 15]], np.float32)[:k]
            ignore = np.array([False, True])[:k]
            image = rng.integers(0, 255, (24 + i, 40, 3), dtype=np.uint8)
            target = {
                "boxes": boxes,
                "labels": np.arange(k, dtype=np.int64) + 1,
                "ignore": ignore,
                "image_id": 100 + i,
                "size": image.shape[:2],
            }
            self.items.append((image, target))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        return self.items[i]


def test_padding_and_empty_images() -> None:
    ds = DetectionDataset(ListDataset(), EvalTransform(S), train=False)
    batch = collate_detections([ds[i] for i in range(3)])  # 0, 1, 2 (one ignored) objects
    assert batch.images.shape == (3, 3, S, S) and batch.images.dtype == torch.float32
    assert batch.gt_boxes.shape == (3, 1, 4) and batch.gt_boxes.dtype == torch.float32
    assert batch.gt_labels.dtype == torch.int64
    assert batch.gt_labels.tolist() == [[-1], [1], [1]]  # ignored box dropped from targets
    assert (batch.gt_boxes[0] == 0).all()
    m = batch.metas[2]
    assert m["image_id"] == 102 and m["orig_size"] == (26, 40) and m["scale"] == (S / 26, S / 40)
    assert m["gt"]["ignore"].tolist() == [False, True]  # full GT kept for evaluation
    np.testing.assert_allclose(batch.gt_boxes[1, 0].numpy(), [2 * S / 40, 2 * S / 25, 20 * S / 40, 24 * S / 25])
    assert len(batch) == 3 and batch.to("cpu").images.shape == batch.images.shape


def test_all_empty_batch_has_one_padded_slot() -> None:
    ds = DetectionDataset(ListDataset(), EvalTransform(S), train=False)
    batch = collate_detections([ds[0], ds[3]])
    assert batch.gt_boxes.shape == (2, 1, 4) and (batch.gt_labels == -1).all()


def test_padding_to_max_objects() -> None:
    ds = DetectionDataset(ListDataset(), EvalTransform(S), train=False)
    item = ds[1]
    many = (item[0], np.tile(item[1], (5, 1)), np.arange(5), item[3])
    batch = collate_detections([many, ds[0], item])
    assert batch.gt_labels.tolist() == [[0, 1, 2, 3, 4], [-1] * 5, [1, -1, -1, -1, -1]]


def test_augmentation_is_a_function_of_seed_epoch_index() -> None:
    ds = DetectionDataset(ListDataset(), TrainTransform(S), train=True, seed=7)
    a = ds[4][0]
    ds.set_epoch(1)
    b = ds[4][0]
    ds.set_epoch(0)
    assert torch.equal(ds[4][0], a) and not torch.equal(a, b)
    other = DetectionDataset(ListDataset(), TrainTransform(S), train=True, seed=7)
    assert torch.equal(other[4][0], a)


def _epoch(loader, epoch: int) -> list:
    set_loader_epoch(loader, epoch)
    return [(b.images.clone(), b.gt_labels.clone(), [m["image_id"] for m in b.metas]) for b in loader]


def test_loader_resume_reproduces_batches() -> None:
    make = lambda workers: make_loader(
        DetectionDataset(ListDataset(), TrainTransform(S), train=True, seed=3), 4, True, workers, seed=3
    )
    full = make(0)
    _epoch(full, 0)
    reference = _epoch(full, 1)
    resumed = _epoch(make(2), 1)  # fresh loader, started at epoch 1, with worker processes
    assert len(reference) == len(resumed) == 3
    for (ia, la, ida), (ib, lb, idb) in zip(reference, resumed):
        assert ida == idb and torch.equal(ia, ib) and torch.equal(la, lb)
    assert sorted(i for _, _, ids in reference for i in ids) == list(range(100, 110))
    assert [ids for *_, ids in _epoch(full, 0)] != [ids for *_, ids in reference]


def test_unshuffled_loader_keeps_order() -> None:
    loader = make_loader(DetectionDataset(ListDataset(5), EvalTransform(S), train=False), 2, False, 0, seed=0)
    ids = [m["image_id"] for b in loader for m in b.metas]
    assert ids == [100, 101, 102, 103, 104]
