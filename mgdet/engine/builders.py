"""From a :class:`RunConfig` to datasets and a detector."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mgdet.anchors import PAPER_ANCHOR_BASE, scaled_anchor_base
from mgdet.data import RecordDataset, VOCDataset
from mgdet.data.errors import DatasetError
from mgdet.data.validate import open_dataset
from mgdet.engine.config import ConfigError, DataConfig, RunConfig
from mgdet.losses import LossConfig
from mgdet.strategies import AssignParams

#: the assignment knobs every checkpoint stores (the paper's)
PAPER_KNOBS = ("pos_iou", "neg_iou", "sigma")


def _path(root: Path, p: str) -> Path:
    return Path(p) if Path(p).is_absolute() else root / p


def build_dataset(d: DataConfig, train: bool, class_names: list[str] | tuple[str, ...] | None = None) -> RecordDataset:
    """The training (``train=True``) or validation dataset described by ``d``, opened by
    :func:`mgdet.data.validate.open_dataset` (the one function `data check` and `visualize` use too).

    - ``voc``: ``root`` is one VOC year folder (Annotations/, JPEGImages/, ImageSets/Main/) and the split a
      split-file name, or a ``VOCdevkit`` folder and the split ``"07+12/trainval"`` / ``"07/test"``.
    - ``coco``: ``root/annotations/instances_<split>.json``, images where
      :func:`~mgdet.data.validate.images_folder` finds them; ``train_ann``/``val_ann`` (json) and
      ``train_images``/``val_images`` (folders) replace those places.
    - ``yolo``: images as COCO, labels in ``root/labels/<split>`` or ``root/labels``; ``train_ann``/``val_ann``
      name the label folders.
    """
    ds = _open(d, train, class_names)
    if len(ds) == 0:
        split = d.train_split if train else d.val_split
        raise DatasetError(
            f"the {'training' if train else 'validation'} split {split!r} has no images: check data.root, "
            f"the split name and the annotation files (mgdet data check {d.root} --split {split})",
            d.root,
        )
    return ds


def _open(d: DataConfig, train: bool, class_names: list[str] | tuple[str, ...] | None) -> RecordDataset:
    """:func:`build_dataset` without the check that the split has images."""
    root = Path(d.root)
    names = class_names or d.class_names
    split = d.train_split if train else d.val_split
    if not d.root:
        raise ConfigError("data.root is empty: set it in the config or with data.root=PATH")
    if not root.exists():
        raise ConfigError(f"data.root = {str(root)!r} does not exist: give the dataset folder with data.root=PATH")
    ann = d.train_ann if train else d.val_ann
    images = d.train_images if train else d.val_images
    # one rule for every verb: the same function `mgdet data check` and `visualize` open datasets with
    return open_dataset(
        root, d.format, split, names, on_error=d.on_error,
        ann=_path(root, ann) if ann else None, images=_path(root, images) if images else None,
    )  # fmt: skip


def model_kwargs(cfg: RunConfig, num_classes: int) -> dict[str, Any]:
    """Arguments of :func:`mgdet.models.build_detector` for this run (stored in checkpoints)."""
    m, t = cfg.model, cfg.train
    kw: dict[str, Any] = {
        "name": m.name,
        "backbone": m.backbone,
        "num_classes": num_classes,
        "input_size": cfg.data.input_size,
        "neck_width": m.width,
        "head_width": m.width,
        "channels_last": t.channels_last,
        "pos_iou": t.pos_iou,
        "neg_iou": t.neg_iou,
        "sigma": t.sigma,
        # the loss style only when not the default: checkpoints of default runs stay as they were
        "loss": {k: v for k, v in vars(cfg.loss).items() if k != "style" or v != LossConfig.style},
        # the other rules' knobs only when set: checkpoints of default runs stay as they were
        **{
            k: v
            for k, v in AssignParams.from_mapping(vars(t)).changed().items()
            if k not in ("pos_iou", "neg_iou", "sigma")
        },
    }
    if m.canonical:
        kw["canonical"] = True
    else:
        kw["head_depth"] = m.head_depth
    base = scaled_anchor_base(cfg.data.input_size) if m.anchor_base == "auto" else float(m.anchor_base)
    if base != PAPER_ANCHOR_BASE:  # stored (as a number) only when it differs: older checkpoints stay as they were
        kw["anchor_base"] = base
    return kw


__all__ = ["VOCDataset", "build_dataset", "model_kwargs"]


# Leading backbone modules per stage (stage k = everything up to stride 2^k), by parameter-name prefix.
_STAGES = {
    "resnet18": (("conv1.", "bn1."), ("layer1.",), ("layer2.",), ("layer3.",), ("layer4.",)),
    "mobilenet_v2": tuple(
        tuple(f"features.{i}." for i in r) for r in (range(0, 2), range(2, 4), range(4, 7), range(7, 14), range(14, 19))
    ),  # fmt: skip
    "vgg16": tuple(
        tuple(f"features.{i}." for i in r)
        for r in (range(0, 7), range(7, 14), range(14, 24), range(24, 34), range(34, 44))
    ),  # fmt: skip
}


def freeze_backbone_stages(det, backbone: str, stages: int) -> list[str]:
    """Freeze the first ``stages`` backbone stages (weights and BN statistics); returns the frozen names.

    Stage k ends at stride 2^k: ResNet-18 (stem, layer1..4), MobileNetV2 (torchvision's stride groups of
    ``features``), VGG-16 (conv blocks). Frozen stages need no backward pass, which matters on a CPU.
    """
    if stages <= 0:
        return []
    prefixes = tuple(p for stage in _STAGES[backbone][:stages] for p in stage)
    frozen = []
    for name, module in det.backbone.named_modules():
        if (name + ".").startswith(prefixes):
            for p in module.parameters(recurse=False):
                p.requires_grad_(False)
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
                module.mgdet_frozen = True
            frozen.append(name)
    return frozen


def keep_frozen_bn_eval(det) -> None:
    """``model.train()`` puts every BN in training mode; put the frozen ones back (call after it)."""
    for m in det.modules():
        if getattr(m, "mgdet_frozen", False):
            m.eval()


def scan_images(dataset: RecordDataset, on_error: str, progress: bool = True) -> list[str]:
    """Header-level check of every image before training (missing, zero-byte, truncated, wrong size), so a
    run does not die hours in on one bad file. ``on_error="raise"``: one DatasetError listing the broken
    files; ``"skip"``: they are dropped from ``dataset`` and returned."""
    from tqdm import tqdm

    from mgdet.data import DatasetError, probe_image

    broken: list[tuple[int, str]] = []
    for i, rec in enumerate(tqdm(dataset.records, desc="check images", unit="img", disable=not progress,
                                 leave=False)):  # fmt: skip
        try:
            probe_image(rec.path, expected_hw=(rec.height, rec.width))
        except DatasetError as e:
            broken.append((i, str(e)))
    if broken and on_error == "raise":
        listing = "\n  ".join(msg for _, msg in broken[:10])
        more = f"\n  ... and {len(broken) - 10} more" if len(broken) > 10 else ""
        raise DatasetError(
            f"{len(broken)} broken image(s) found before training (set data.on_error=skip to drop them):\n"
            f"  {listing}{more}"
        )
    bad = {i for i, _ in broken}
    dataset.records = [r for i, r in enumerate(dataset.records) if i not in bad]
    return [msg for _, msg in broken]
