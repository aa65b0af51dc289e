"""The CPU recipe for the shipped benchmark, and how grid runs get their configurations.

The recipe is plain data (:func:`benchmark_recipe`); ``configs/benchmark/*.yaml`` are the same values
written out (:func:`write_benchmark_configs`, checked by ``tests/demo/test_demo.py``). Every strategy of one
detector gets exactly the same recipe: only ``train.strategy`` differs, so comparisons are fair.
Torch-free at import (the command line's help texts read its names); :mod:`mgdet.engine.config` is imported
where a configuration is built.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from mgdet.strategies import STRATEGIES, STRATEGY_TABLE, find_strategy

if TYPE_CHECKING:
    from mgdet.engine.config import RunConfig

#: Short names used in file and run names, in table order (the paper's Table 1 first); a view of
#: :data:`mgdet.strategies.STRATEGY_TABLE`.
STRATEGY_ABBR: dict[str, str] = {s.name: s.short for s in STRATEGY_TABLE}
#: Row labels (the paper's Table 1 for its four strategies); a view of the same table.
STRATEGY_TITLES: dict[str, str] = {s.name: s.title for s in STRATEGY_TABLE}
#: Detectors of the CPU benchmark (MobileNetV2 ImageNet backbone, light head).
BENCHMARK_DETECTORS: tuple[str, ...] = ("retinanet_mbv2", "fssd_mbv2")
#: Every model of the paper (``--full``); their configs come from ``--config-dir`` (default configs/voc).
PAPER_DETECTORS: tuple[str, ...] = (
    "fssd_r18", "fssd_vgg16", "retinanet_r18", "retinanet_vgg16", "rfbnet_vgg16", "fcos_r18", "fcos_vgg16",
)  # fmt: skip
DETECTOR_TITLES: dict[str, str] = {
    "retinanet_mbv2": "RetinaNet, MobileNetV2",
    "fssd_mbv2": "FSSD, MobileNetV2",
    "fssd_r18": "FSSD, ResNet-18",
    "fssd_vgg16": "FSSD, VGG-16",
    "retinanet_r18": "RetinaNet, ResNet-18",
    "retinanet_vgg16": "RetinaNet, VGG-16",
    "rfbnet_vgg16": "RFBNet, VGG-16",
    "fcos_r18": "FCOS, ResNet-18",
    "fcos_vgg16": "FCOS, VGG-16",
}
DEFAULT_DATA = "mgdet_data/benchmark"
#: Epochs (of 1024 images) of the full CPU recipe: what ``mgdet reproduce`` trains.
RECIPE_EPOCHS = 32
#: ``mgdet demo`` evaluates the zoo's trained detectors and trains the same two rules live for this many epochs
#: (of 1024 images), so that the whole demo stays within about 6 minutes on two CPU cores; ``--train-epochs``
#: changes it, ``--full`` trains the whole recipe.
DEMO_TRAIN_EPOCHS = 1
#: the detector of the demo's live runs (the zoo pair's)
DEMO_PAIR_DETECTOR = "retinanet_mbv2"


def parse_strategy(name: str) -> str:
    """Full strategy name from a full or short name (``mg`` -> ``mutual_guidance``)."""
    from mgdet.engine.config import ConfigError

    spec = find_strategy(name)
    if spec is None:
        raise ConfigError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)} or their short names "
                          f"{', '.join(STRATEGY_ABBR.values())}")  # fmt: skip
    return spec.name


def benchmark_recipe(
    detector: str = "retinanet_mbv2",
    strategy: str = "mutual_guidance",
    seed: int = 0,
    data_root: str = DEFAULT_DATA,
    output_dir: str = "mgdet_runs/benchmark/run",
) -> dict[str, Any]:
    """The CPU benchmark recipe as a config dict (see :class:`mgdet.engine.config.RunConfig`).

    Chosen by measurement (docs/results/benchmark.md, "How the recipe was chosen"): 256 px input (the
    benchmark's own image size) with the paper's anchor layout scaled to it (smallest anchor 24 x 256/320 =
    19.2 px: 99.2 % of the training boxes have an anchor with IoU >= 0.5), MobileNetV2 (ImageNet,
    ``pretrained: offline``) entirely frozen, 64-channel neck and head with two trunk convs, horizontal
    flip only (no SSD zoom-out / crop), channels_last, batch 16, AdamW lr 4e-3 with a 50-step warm-up and
    cosine decay, 32 epochs of 1024 images each (a different random subset every epoch: 2048 steps,
    about 16 passes over the 2000 training images), evaluation after every 8th epoch. The frozen
    backbone's outputs are cached per view (``train.feature_cache_mb``: at most 3 GiB, about 2.2 GiB for the
    4000 views of the benchmark), which halves the cost of a step once the cache is warm.
    """
    from mgdet.engine.config import ConfigError

    name, _, backbone = detector.partition("_")
    if backbone != "mbv2" or name not in ("retinanet", "fssd"):
        raise ConfigError(f"no built-in CPU recipe for {detector!r} (built in: {', '.join(BENCHMARK_DETECTORS)}); "
                          "pass --config-dir with <detector>_<strategy>.yaml files")  # fmt: skip
    return {
        "model": {"name": name, "backbone": "mobilenet_v2", "pretrained": "offline", "width": 64,
                  "head_depth": 2, "frozen_stages": 5, "anchor_base": 19.2},
        "data": {"format": "voc", "root": data_root, "train_split": "train", "val_split": "val",
                 "input_size": 256, "augment": "flip", "num_workers": 1},
        "train": {"strategy": parse_strategy(strategy), "epochs": RECIPE_EPOCHS, "images_per_epoch": 1024,
                  "batch_size": 16,
                  "optimizer": "adamw", "lr": 4.0e-3, "weight_decay": 5.0e-4, "warmup_iters": 50,
                  "schedule": "cosine", "min_lr": 1.0e-5, "grad_clip": 10.0, "channels_last": True,
                  "feature_cache_mb": 3072, "eval_interval": 8, "seed": seed},
        "eval": {"batch_size": 32},
        "output_dir": output_dir,
        "device": "auto",
    }  # fmt: skip


def quick_overrides() -> list[str]:
    """Overrides that turn any recipe into a seconds-long smoke run (``--quick``; used by the tests)."""
    return [
        "train.epochs=2", "train.max_iters=2", "train.batch_size=4", "train.images_per_epoch=4",
        "train.warmup_iters=1", "train.eval_interval=0", "data.input_size=64", "data.num_workers=0",
        "model.width=16", "eval.batch_size=8", "eval.pre_nms_topk=100", "eval.max_det=50",
    ]  # fmt: skip


def grid_config(
    detector: str,
    strategy: str,
    seed: int,
    output_dir: str | Path,
    data_root: str | Path | None = None,
    config_dir: str | Path | None = None,
    epochs: int | None = None,
    overrides: list[str] | None = None,
) -> RunConfig:
    """Configuration of one grid run: built-in recipe (or ``config_dir/<detector>_<abbr>.yaml``) + overrides.

    ``seed``, ``output_dir`` and ``train.strategy`` always win; ``data_root``/``epochs`` when given.
    """
    from mgdet.engine.config import ConfigError, apply_overrides, from_dict

    strategy = parse_strategy(strategy)
    if config_dir is not None:
        path = Path(config_dir) / f"{detector}_{STRATEGY_ABBR[strategy]}.yaml"
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (expected <detector>_<strategy>.yaml in {config_dir})")
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        source = str(path)
    else:
        data = benchmark_recipe(detector, strategy, seed)
        source = f"built-in recipe {detector}"
    data = apply_overrides(data, list(overrides or []))
    data.setdefault("train", {}).update(strategy=strategy, seed=int(seed))
    if epochs is not None:
        data["train"]["epochs"] = int(epochs)
    if data_root is not None:
        data.setdefault("data", {})["root"] = str(data_root)
    data["output_dir"] = str(output_dir)
    return from_dict(data, source)


def write_benchmark_configs(out_dir: str | Path) -> list[Path]:
    """Write ``<detector>_<abbr>.yaml`` for every benchmark detector and strategy (the recipe, as YAML)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for detector in BENCHMARK_DETECTORS:
        for strategy, abbr in STRATEGY_ABBR.items():
            cfg = benchmark_recipe(detector, strategy, 0, DEFAULT_DATA, f"mgdet_runs/benchmark/{detector}_{abbr}")
            path = out / path_name(detector, abbr)
            header = (
                f"# {DETECTOR_TITLES[detector]} - {STRATEGY_TITLES[strategy]}: the CPU benchmark recipe\n"
                "# (mgdet.demo.recipe.benchmark_recipe). Only train.strategy differs between the files\n"
                f"# of a detector. Train: mgdet train {path.as_posix()}\n"
            )
            path.write_text(header + yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
            written.append(path)
    return written


def path_name(detector: str, abbr: str) -> str:
    """File name of a grid config: ``<detector>_<abbr>.yaml``."""
    return f"{detector}_{abbr}.yaml"


def recipe_summary(cfg: RunConfig) -> str:
    """One line describing a run's recipe for reports (model, input, anchors, augmentation, schedule)."""
    from mgdet.anchors import scaled_anchor_base  # torch: not at import (mgdet --help stays torch-free)

    m, d, t = cfg.model, cfg.data, cfg.train
    frozen = "all" if m.frozen_stages >= 5 else str(m.frozen_stages)
    base = scaled_anchor_base(d.input_size) if m.anchor_base == "auto" else float(m.anchor_base)
    return (f"{m.name} {m.backbone}, input {d.input_size} px, anchor base {base:g} px, width {m.width}, "
            f"head depth {m.head_depth}, frozen backbone stages {frozen}, augment {d.augment}, {t.epochs} epochs x "
            f"{t.images_per_epoch or 'all'} images, batch {t.batch_size}, {t.optimizer} lr {t.lr:g}"
            + (f" (backbone x{t.backbone_lr_mult:g})" if t.backbone_lr_mult != 1.0 else "")
            + (", channels_last" if t.channels_last else "")
            + (f", backbone feature cache {t.feature_cache_mb} MiB" if t.feature_cache_mb else ""))  # fmt: skip
