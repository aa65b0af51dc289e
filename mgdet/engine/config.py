"""Run configuration: plain dataclasses, loaded from YAML (safe_load, never executed) and CLI overrides.

A config file mirrors :class:`RunConfig`: sections ``model``, ``data``, ``train``, ``loss``, ``eval`` and
the top-level keys ``output_dir`` and ``device``. Overrides are ``section.key=value`` with YAML values
(``train.epochs=2``, ``data.class_names=[a,b]``). Unknown keys and wrong types are :class:`ConfigError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mgdet.anchors import PAPER_ANCHOR_BASE
from mgdet.catalog import BACKBONES, DATA_FORMATS, DEFAULT_INPUT_SIZE, DETECTORS
from mgdet.errors import MgdetError
from mgdet.limits import MAX_HEAD_DEPTH, MAX_INPUT_SIZE, MAX_WIDTH
from mgdet.losses import LOSS_STYLES, LossConfig
from mgdet.postprocess import PAPER_POSTPROCESS
from mgdet.strategies import L2C_METRICS, MG_REG, STRATEGIES, TAL_REG, AssignParams


class ConfigError(MgdetError, ValueError):
    """A configuration value that cannot be used; the message names the file and the key."""


@dataclass
class ModelConfig:
    """Detector architecture (see :func:`mgdet.models.build_detector`)."""

    name: str = "retinanet"  # fssd | retinanet | rfbnet | fcos
    backbone: str = "resnet18"  # resnet18 | vgg16 | mobilenet_v2
    pretrained: str | None = None  # local file, URL, "offline" (the bundled MobileNetV2 weights), or null
    width: int = 256  # neck / head channels
    head_depth: int = 1  # 3x3 conv(+BN+ReLU) layers before the prediction convs
    canonical: bool = False  # RetinaNet only: P3-P7 with 4-conv towers instead of the authors' design
    frozen_stages: int = 0  # freeze the first N backbone stages (stage k ends at stride 2^k); 0 = none
    # paper layout: smallest anchor side in pixels (24 at the paper's 320 px); "auto" scales it with
    # data.input_size (19.2 at 256 px); anchors are base*2^k and base*2^k*sqrt(2) on level k
    anchor_base: float | str = PAPER_ANCHOR_BASE


@dataclass
class DataConfig:
    """Where the images and annotations are, and how they are prepared."""

    format: str = "voc"  # voc | coco | yolo
    root: str = ""  # VOC: a folder with Annotations/JPEGImages/ImageSets (or a VOCdevkit with years);
    # COCO: the dataset root; YOLO: the dataset root
    train_split: str = "trainval"  # VOC split name(s), e.g. "trainval" or "2007/trainval+2012/trainval"
    val_split: str = "test"
    train_ann: str = ""  # COCO: annotation json for training (relative to root or absolute)
    val_ann: str = ""
    train_images: str = ""  # COCO / YOLO: image folder (relative to root or absolute)
    val_images: str = ""
    class_names: list[str] | None = None  # null: from the dataset (classes.txt, COCO categories, VOC 20)
    input_size: int = DEFAULT_INPUT_SIZE
    num_workers: int = 2
    # ssd (= true): the paper's photometric distortion, zoom-out x1-4, IoU crop, flip; flip: horizontal flip
    # only (the usual choice for short schedules, e.g. MMDetection's 1x); none (= false): resize only
    augment: bool | str = True
    on_error: str = "raise"  # raise | skip: what to do with a broken image or annotation
    check_images: bool = True  # header-level scan of every image before training starts


_ASSIGN = AssignParams()


@dataclass
class TrainConfig:
    """Optimisation recipe. Defaults are the authors' VOC recipe."""

    strategy: str = "mutual_guidance"  # a name of mgdet.strategies.STRATEGIES (iou, ..., atss, task_aligned)
    # the assignment knobs (mgdet.strategies.AssignParams, where the defaults are written)
    sigma: float = _ASSIGN.sigma
    # NOT in the paper (a controlled experiment): static IoU matching for the first N steps, then `strategy`
    static_warmup_iters: int = 0
    pos_iou: float = _ASSIGN.pos_iou
    neg_iou: float = _ASSIGN.neg_iou
    fcos_radius: float = _ASSIGN.fcos_radius  # FCOS centre sampling radius (strides)
    atss_topk: int = _ASSIGN.atss_topk  # ATSS candidates per level
    tal_topk: int = _ASSIGN.tal_topk  # task-aligned: positives per GT
    tal_alpha: float = _ASSIGN.tal_alpha  # task-aligned metric s ** alpha * u ** beta
    tal_beta: float = _ASSIGN.tal_beta
    mgd_topq: int = _ASSIGN.mgd_topq  # mutual_guidance_dynamic: k = floor(sum of the top mgd_topq qualities)
    mg_soft_target: bool = _ASSIGN.mg_soft_target  # L2C / MG: soft target = IoU of the regressed box (a control)
    mg_metric: str = _ASSIGN.mg_metric  # L2C ranks by iou (the paper) | aligned (TOOD's p^tal_alpha * IoU^tal_beta)
    mg_lambda: float = _ASSIGN.mg_lambda  # static (0) .. mutual (1, the paper) criteria of L2C / C2L
    mg_ramp: float = _ASSIGN.mg_ramp  # > 0: mg_lambda ramps up from 0 over this fraction of the training steps
    tal_reg: str = _ASSIGN.tal_reg  # task-aligned's regression samples: tal (its positives) | c2l (the paper's C2L)
    mg_reg: str = _ASSIGN.mg_reg  # mutual_guidance's regression samples: c2l (the paper) | cls (its cls positives)
    epochs: int = 250
    batch_size: int = 32  # total over all processes
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4  # not applied to BN and bias parameters
    backbone_lr_mult: float = 1.0  # the (unfrozen) backbone trains at lr x this (pretrained weights: < 1)
    warmup_iters: int = 500
    schedule: str = "cosine"  # cosine | step
    min_lr: float = 1e-6
    step_epochs: list[int] = field(default_factory=list)  # step schedule: lr x 0.1 at these epochs
    amp: bool | None = None  # null: on for CUDA, off for CPU
    channels_last: bool = False
    # keep the backbone's outputs per training view in memory, up to this many MiB (0 = off); needs a fully
    # frozen backbone (model.frozen_stages = all) and data.augment flip or none (mgdet.engine.feature_cache)
    feature_cache_mb: int = 0
    ema: bool = False
    ema_decay: float = 0.9998
    grad_clip: float = 0.0  # max grad norm, 0 = off
    max_bad_steps: int = 10  # stop after this many non-finite steps in a row
    max_iters: int = 0  # stop after this many iterations in total (0 = no limit; for smoke tests)
    images_per_epoch: int = 0  # train on this many images of each epoch's shuffled order (0 = all);
    # every epoch draws a different subset, so short CPU recipes get several epochs (and history rows)
    eval_interval: int = 10  # evaluate every N epochs (0 = only at the end)
    seed: int = 0
    deterministic: bool = False  # torch.use_deterministic_algorithms (slower on GPU)


@dataclass
class EvalConfig:
    """Inference settings used by evaluation and detection (the paper's values, :data:`PAPER_POSTPROCESS`)."""

    score_thresh: float = PAPER_POSTPROCESS.score_thresh
    nms_iou: float = PAPER_POSTPROCESS.nms_iou
    max_det: int = PAPER_POSTPROCESS.max_det
    pre_nms_topk: int = PAPER_POSTPROCESS.pre_nms_topk
    batch_size: int = 16


@dataclass
class RunConfig:
    """Everything a training run needs; saved inside every checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)  # see mgdet.losses.LossConfig
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str = "runs/exp"
    device: str = "auto"  # auto | cpu | cuda | cuda:N

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: Values of ``data.augment``; true means "ssd", false means "none" (see :func:`augment_mode`).
AUGMENT_MODES: tuple[bool | str, ...] = (True, False, "ssd", "flip", "none")


def augment_mode(value: bool | str) -> str:
    """``data.augment`` as one of "ssd", "flip", "none" (booleans are the old spelling)."""
    if value is True:
        return "ssd"
    if value is False:
        return "none"
    return str(value)


_CHOICES = {
    "model.name": DETECTORS,
    "model.backbone": BACKBONES,
    "data.format": DATA_FORMATS,
    "data.on_error": ("raise", "skip"),
    "train.strategy": STRATEGIES,
    "train.optimizer": ("sgd", "adamw"),
    "train.schedule": ("cosine", "step"),
}


def _check_type(value: Any, tp: Any, where: str) -> Any:
    """Return ``value`` converted to ``tp`` when lossless (int -> float), else raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        (item,) = typing.get_args(tp)
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        if not math.isfinite(float(value)):  # YAML reads 1e309 and .inf as infinity
            raise ConfigError(f"{where}: expected a finite number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {tp}")


def _build(cls: type, data: dict[str, Any], prefix: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: section '{prefix.rstrip('.') or 'top level'}' must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (known: {', '.join(fields)})"
            raise ConfigError(f"{source}: unknown key '{where}'{hint}")
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _build(tp, value or {}, f"{where}.", source)
            continue
        try:
            kwargs[key] = _check_type(value, tp, where)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        if where in _CHOICES and kwargs[key] not in _CHOICES[where]:
            raise ConfigError(f"{source}: {where} must be one of {', '.join(_CHOICES[where])}, got {value!r}")
    return cls(**kwargs)


#: stages of every backbone (stage k ends at stride 2^k): model.frozen_stages is 0..BACKBONE_STAGES
BACKBONE_STAGES = 5


def validate(cfg: RunConfig, source: str = "config") -> RunConfig:
    """Cross-field checks that types alone cannot express."""
    t, d = cfg.train, cfg.data
    checks = [
        (t.epochs >= 1, "train.epochs must be >= 1"),
        (t.batch_size >= 1, "train.batch_size must be >= 1"),
        (t.images_per_epoch >= 0, "train.images_per_epoch must be >= 0"),
        (t.lr > 0, "train.lr must be > 0"),
        (t.backbone_lr_mult >= 0, "train.backbone_lr_mult must be >= 0"),
        (t.static_warmup_iters >= 0, "train.static_warmup_iters must be >= 0"),
        (t.mg_metric in L2C_METRICS, f"train.mg_metric must be one of {', '.join(L2C_METRICS)}"),
        (0.0 <= t.mg_lambda <= 1.0, "train.mg_lambda must be in [0, 1]"),
        (0.0 <= t.mg_ramp <= 1.0, "train.mg_ramp must be in [0, 1] (a fraction of the training steps)"),
        (t.tal_reg in TAL_REG, f"train.tal_reg must be one of {', '.join(TAL_REG)}"),
        (t.mg_reg in MG_REG, f"train.mg_reg must be one of {', '.join(MG_REG)}"),
        (cfg.loss.style in LOSS_STYLES, f"loss.style must be one of {', '.join(LOSS_STYLES)}"),
        (cfg.loss.style == "mgdet" or cfg.model.name != "fcos", "loss.style authors is for anchor detectors, not fcos"),
        (d.augment in AUGMENT_MODES, "data.augment must be true, false, ssd, flip or none"),
        (t.feature_cache_mb >= 0, "train.feature_cache_mb must be >= 0"),
        (
            not t.feature_cache_mb or d.augment not in AUGMENT_MODES or augment_mode(d.augment) != "ssd",
            "train.feature_cache_mb needs data.augment flip or none (the SSD augmentation makes every view new)",
        ),
        (t.sigma > 1, "train.sigma must be > 1 (Eq. 1 of the paper)"),
        (0 <= t.neg_iou <= t.pos_iou <= 1, "need 0 <= train.neg_iou <= train.pos_iou <= 1"),
        (t.fcos_radius > 0, "train.fcos_radius must be > 0"),
        (
            t.atss_topk >= 1 and t.tal_topk >= 1 and t.mgd_topq >= 1,
            "train.atss_topk, train.tal_topk and train.mgd_topq must be >= 1",
        ),  # fmt: skip
        (t.tal_alpha >= 0 and t.tal_beta >= 0, "train.tal_alpha and train.tal_beta must be >= 0"),
        (
            32 <= d.input_size <= MAX_INPUT_SIZE and d.input_size % 32 == 0,
            f"data.input_size must be a multiple of 32 from 32 to {MAX_INPUT_SIZE}",
        ),
        (d.num_workers >= 0, "data.num_workers must be >= 0"),
        (8 <= cfg.model.width <= MAX_WIDTH, f"model.width must be from 8 to {MAX_WIDTH}"),
        (1 <= cfg.model.head_depth <= MAX_HEAD_DEPTH, f"model.head_depth must be from 1 to {MAX_HEAD_DEPTH}"),
        (
            0 <= cfg.model.frozen_stages <= BACKBONE_STAGES,
            f"model.frozen_stages must be from 0 (none) to {BACKBONE_STAGES} (the whole backbone)",
        ),
        (t.max_iters >= 0, "train.max_iters must be >= 0 (0 = no limit)"),
        (t.eval_interval >= 0, "train.eval_interval must be >= 0 (0 = only at the end)"),
        (bool(str(cfg.output_dir).strip()), "output_dir must not be empty (it would train into the current folder)"),
        (
            cfg.model.anchor_base == "auto"
            or (not isinstance(cfg.model.anchor_base, str) and cfg.model.anchor_base > 0),
            "model.anchor_base must be a number > 0 or auto (the paper's 24 px scaled with data.input_size)",
        ),
        (cfg.eval.max_det >= 1, "eval.max_det must be >= 1"),
    ]
    for ok, msg in checks:
        if not ok:
            raise ConfigError(f"{source}: {msg}")
    return cfg


def from_dict(data: dict[str, Any], source: str = "config") -> RunConfig:
    """Build and validate a :class:`RunConfig` from a nested dict."""
    return validate(_build(RunConfig, data or {}, "", source), source)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=2"`` -> (["train", "epochs"], 2); the value is parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. train.epochs=2")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({e})") from None
    comment = re.search(r"(^|\s)#", raw)
    if comment and _same_yaml(raw[: comment.start()], value):  # YAML read the rest as a comment
        raise ConfigError(
            f"override {text!r}: '#' after a space starts a YAML comment, which would silently drop "
            f"{raw[comment.start() :].strip()!r}; quote the value, e.g. {key}='{raw}'"
        )
    return key.strip().split("."), value


def _same_yaml(text: str, value: Any) -> bool:
    """Whether ``text`` parses (as YAML) to ``value``."""
    try:
        return yaml.safe_load(text) == value
    except yaml.YAMLError:
        return False


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``key=value`` overrides applied (types are checked later)."""
    out = yaml.safe_load(yaml.safe_dump(data)) if data else {}
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: '{k}' is not a section")
        node[keys[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or start from defaults when ``path`` is None) and apply overrides."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{p}: expected a mapping of sections at the top level")
    if overrides:
        data = apply_overrides(data, overrides)
        source += " + overrides"
    return from_dict(data, source)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
