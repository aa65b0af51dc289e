"""The training loop, readable top to bottom: data, model, optimiser, then epochs of steps.

Single process: ``mgdet train CONFIG``; multi-GPU: ``torchrun --nproc_per_node N -m mgdet train CONFIG``.
Checkpoints (``OUTPUT_DIR/last.pth`` every epoch, ``best.pth`` on the best AP) are atomic and hold everything
needed to continue exactly where the run stopped (``--resume``). SIGINT (Ctrl-C) writes a checkpoint
at the next step boundary and exits; a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import copy
import csv
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, Sampler
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from mgdet.data import DatasetError, DetectionDataset, EpochRandomSampler, collate_detections
from mgdet.data.collate import seed_worker
from mgdet.data.transforms import build_train_transform
from mgdet.engine import distributed as distr
from mgdet.engine.builders import (
    build_dataset,
    freeze_backbone_stages,
    keep_frozen_bn_eval,
    model_kwargs,
    scan_images,
)
from mgdet.engine.checkpoint import (
    CheckpointError,
    check_resume_identity,
    load_checkpoint,
    non_finite,
    save_checkpoint,
    set_rng_state,
)
from mgdet.engine.config import ConfigError, RunConfig, augment_mode, save_config
from mgdet.engine.feature_cache import FeatureCache, backbone_is_frozen
from mgdet.engine.inference import evaluate_model
from mgdet.engine.state import EpochStats, TrainState
from mgdet.errors import MgdetError
from mgdet.outputs import check_run_folder, folder_lock
from mgdet.stats import assignment_stats

HISTORY_COLUMNS = [
    "epoch", "iter", "lr", "loss", "loss_cls", "loss_reg", "pos_cls_per_gt", "pos_reg_per_gt", "ign_per_gt",
    "disagree", "pos_score_median", "pos_score_mean",
    "skipped_steps", "epoch_time_s", "AP", "AP50", "AP75", "APs", "APm", "APl", "misalign",
]  # fmt: skip
EVAL_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "misalign")


class TrainingError(MgdetError, RuntimeError):
    """Training cannot go on (e.g. too many non-finite steps in a row)."""


@dataclass
class TrainResult:
    output_dir: Path
    history: list[dict[str, Any]]
    final_metrics: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    checkpoint: Path | None = None
    failed_images: list[str] = field(default_factory=list)  # failed to decode mid-run (data.on_error=skip)


# --------------------------------------------------------------------------------------------- schedule
def lr_at(it: int, total_iters: int, iters_per_epoch: int, cfg) -> float:
    """Learning rate at global step ``it``: linear warm-up, then cosine to ``min_lr`` (or x0.1 steps)."""
    warm = min(cfg.warmup_iters, max(total_iters - 1, 0))
    if it < warm:
        return cfg.lr * (0.001 + 0.999 * it / warm)
    if cfg.schedule == "step":
        epoch = it // max(iters_per_epoch, 1)
        return cfg.lr * 0.1 ** sum(epoch >= e for e in cfg.step_epochs)
    progress = (it - warm) / max(total_iters - warm, 1)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


def param_groups(model: torch.nn.Module, weight_decay: float, backbone_lr_mult: float = 1.0) -> list[dict]:
    """Weight decay on conv / linear weights only, not on BN parameters or biases; parameters under
    ``model.backbone`` get ``lr_mult = backbone_lr_mult`` (the loop sets each group's lr to lr x lr_mult)."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = (name.startswith("backbone.") and backbone_lr_mult != 1.0, p.ndim > 1)
            groups.setdefault(key, []).append(p)
    return [
        {"params": ps, "weight_decay": weight_decay if decay else 0.0, "lr_mult": backbone_lr_mult if bb else 1.0}
        for (bb, decay), ps in sorted(groups.items(), key=lambda kv: (kv[0][0], not kv[0][1]))
    ]


class ModelEMA:
    """Exponential moving average of the weights, with the usual warm-up of the decay."""

    def __init__(self, model: torch.nn.Module, decay: float, updates: int = 0) -> None:
        self.module = copy.deepcopy(model).eval()
        self.decay, self.updates = decay, updates
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 2000))
        msd = model.state_dict()
        for k, v in self.module.state_dict().items():
            if v.dtype.is_floating_point:
                v.mul_(d).add_(msd[k].detach(), alpha=1 - d)
            else:
                v.copy_(msd[k])


class SkipSampler(Sampler[int]):
    """Wraps an epoch-aware sampler and drops its first ``skip`` indices (mid-epoch resume)."""

    def __init__(self, inner: Sampler[int]) -> None:
        self.inner, self.skip = inner, 0

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def __iter__(self):
        it = iter(self.inner)
        for _ in range(self.skip):
            next(it, None)
        return it

    def __len__(self) -> int:
        return len(self.inner) - self.skip


class LimitSampler(Sampler[int]):
    """Wraps an epoch-aware sampler and keeps only the first ``limit`` indices of each epoch (0 = all)."""

    def __init__(self, inner: Sampler[int], limit: int) -> None:
        self.inner, self.limit = inner, limit

    def set_epoch(self, epoch: int) -> None:
        self.inner.set_epoch(epoch)

    def __iter__(self):
        it = iter(self.inner)
        return it if not self.limit else (i for _, i in zip(range(len(self)), it))

    def __len__(self) -> int:
        return len(self.inner) if not self.limit else min(self.limit, len(self.inner))


class _StopFlag:
    """SIGINT handler: the first Ctrl-C asks for a checkpoint and a clean stop, the second aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def __enter__(self) -> _StopFlag:
        try:
            self._old = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not in the main thread
            self._old = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def _seed_everything(seed: int, deterministic: bool) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 (third-party code may use the legacy global RNG)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def _write_history(path: Path, history: list[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=HISTORY_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in history:
            w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in HISTORY_COLUMNS})
    tmp.replace(path)


def _feature_cache(cfg: RunConfig, det, distributed: bool) -> FeatureCache | None:
    """The backbone feature cache of ``train.feature_cache_mb``, after checking it can be exact."""
    mb = cfg.train.feature_cache_mb
    if not mb:
        return None
    if distributed:
        raise ConfigError("train.feature_cache_mb works in a single process only; set it to 0 under torchrun")
    if not backbone_is_frozen(det):
        raise ConfigError(
            f"train.feature_cache_mb needs the whole backbone frozen: set model.frozen_stages: 5 "
            f"(now {cfg.model.frozen_stages}) or train.feature_cache_mb: 0"
        )
    return FeatureCache(mb * 2**20)


def _tensorboard(output_dir: Path, enabled: bool):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(output_dir / "tb"))


# ------------------------------------------------------------------------------------------------ train
def train(
    cfg: RunConfig,
    resume: str | Path | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    evaluate_at_end: bool = True,
    log: Callable[[str], None] | None = None,
    restart: bool = False,
) -> TrainResult:
    """Train a detector as described by ``cfg``; returns the per-epoch history and final metrics.

    ``restart`` lets a run without ``resume`` start over in a folder whose earlier run stopped before its first
    checkpoint (``--resume auto`` finding no ``last.pth``); otherwise any run file there is refused.

    ``log`` receives the run's messages (resumed, interrupted, skipped images, cache summary); the CLI passes
    ``print``, the default is silent. The main process holds ``output_dir``'s lock for the whole run: a second
    run into the same folder is refused (:func:`mgdet.outputs.folder_lock`)."""
    info = distr.init_distributed(cfg.device)
    if not info.is_main:
        return _train(cfg, info, resume, progress, tensorboard, evaluate_at_end, log, restart)
    with folder_lock(cfg.output_dir, "train", log or (lambda _msg: None)):
        return _train(cfg, info, resume, progress, tensorboard, evaluate_at_end, log, restart)


def _train(
    cfg: RunConfig,
    info: distr.DistInfo,
    resume: str | Path | None,
    progress: bool,
    tensorboard: bool,
    evaluate_at_end: bool,
    log: Callable[[str], None] | None,
    restart: bool = False,
) -> TrainResult:
    """The body of :func:`train`, once the output folder is locked: build, resume, epochs, final evaluation."""
    say = log if (log is not None and info.is_main) else (lambda _msg: None)
    if info.is_main:
        check_run_folder(cfg.output_dir, resume, restart)  # before anything is written
    run = build_run(cfg, info, say, progress)
    state = resume_run(run, resume) if resume else TrainState()
    if info.is_main:  # only now: a refused --resume leaves the run folder describing its weights
        run.out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run.out_dir / "config.yaml")
    run.writer = _tensorboard(run.out_dir, tensorboard and info.is_main)
    result = TrainResult(run.out_dir, state.history)
    with _StopFlag() as stop:
        while state.epoch < cfg.train.epochs and not run.reached_max_iters(state):
            if not train_one_epoch(run, state, stop, result, progress):
                result.checkpoint = run.checkpoint(state, run.out_dir / "last.pth")
                result.interrupted = True
                say(f"interrupted: checkpoint written to {run.out_dir / 'last.pth'}; continue with --resume")
                break
            final = state.epoch == cfg.train.epochs or run.reached_max_iters(state)
            every = cfg.train.eval_interval
            due = info.is_main and bool(every) and state.epoch % every == 0 and not final
            evaluate_and_save(run, state, result, evaluate=due, progress=progress)
            distr.barrier(info)
    _report(run, state, result)
    if evaluate_at_end and info.is_main and not result.interrupted:
        evaluate_and_save(run, state, result, evaluate=True, progress=progress, final=True)
    if run.writer is not None:
        run.writer.close()
    distr.barrier(info)  # the other ranks wait for rank 0's evaluation: the process group is torn down together
    distr.cleanup(info)
    return result


@dataclass
class Run:
    """What a run builds once, before its first step (:func:`build_run`)."""

    cfg: RunConfig
    info: distr.DistInfo
    device: torch.device
    det: Any  # the Detector
    model: torch.nn.Module  # ``det``, or its DDP wrapper under torchrun
    opt: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    ema: ModelEMA | None
    cache: FeatureCache | None
    loader: DataLoader
    sampler: SkipSampler
    train_ds: DetectionDataset
    val_base: Any
    class_names: list[str]
    model_config: dict[str, Any]
    per_proc_batch: int
    iters_per_epoch: int
    total_iters: int
    use_amp: bool
    amp_dtype: torch.dtype
    say: Callable[[str], None]
    writer: Any = None

    @property
    def out_dir(self) -> Path:
        return Path(self.cfg.output_dir)

    def lr(self, it: int) -> float:
        return lr_at(it, self.total_iters, self.iters_per_epoch, self.cfg.train)

    def reached_max_iters(self, state: TrainState) -> bool:
        return bool(self.cfg.train.max_iters and state.iteration >= self.cfg.train.max_iters)

    def checkpoint(self, state: TrainState, path: Path) -> Path | None:
        """Write ``state`` with the current weights to ``path`` (rank 0 only); never with non-finite weights."""
        if not self.info.is_main:
            return None
        ema = self.ema.module.state_dict() if self.ema else None
        ckpt = state.to_checkpoint(
            model=self.det.state_dict(), optimizer=self.opt.state_dict(), scaler=self.scaler.state_dict(),
            ema=ema, ema_updates=self.ema.updates if self.ema else 0, config=self.cfg.to_dict(),
            model_config=self.model_config, class_names=self.class_names,
        )  # fmt: skip
        bad = non_finite(ckpt["model"]) + non_finite(ema or {})
        if bad:  # never write a checkpoint that every verb would refuse (and that would replace a good one)
            raise TrainingError(
                f"the weights hold NaN or infinite values after step {state.iteration} (epoch {state.epoch}; e.g. "
                f"{bad[:3]}): lower train.lr (now {self.cfg.train.lr}) or enable train.grad_clip; {path} was not "
                "written" + (" (it keeps the previous checkpoint)" if path.is_file() else "")
            )
        return save_checkpoint(ckpt, path)


def build_run(cfg: RunConfig, info: distr.DistInfo, say: Callable[[str], None], progress: bool = False) -> Run:
    """Seed, then build the data (scanned), the loader, the detector, the optimiser, AMP and the EMA."""
    device = distr.resolve_device(cfg.device, info)
    t = cfg.train
    _seed_everything(t.seed, t.deterministic)
    train_base = build_dataset(cfg.data, train=True)
    class_names = list(cfg.data.class_names or train_base.class_names)
    val_base = build_dataset(cfg.data, train=False, class_names=class_names)
    if cfg.data.check_images:
        for ds in (train_base, val_base):
            dropped = scan_images(ds, cfg.data.on_error, progress=progress and info.is_main)
            if dropped:
                say(f"skipped {len(dropped)} broken image(s), e.g. {dropped[0]}")
    if len(train_base) == 0:
        raise DatasetError("no training image left after skipping broken files; nothing to train on", cfg.data.root)
    transform = build_train_transform(cfg.data.input_size, augment_mode(cfg.data.augment))
    train_ds = DetectionDataset(train_base, transform, train=True, seed=t.seed)
    per_proc_batch = max(1, t.batch_size // info.world_size)
    inner: Sampler[int] = (
        DistributedSampler(train_ds, shuffle=True, seed=t.seed, drop_last=True)
        if info.enabled
        else EpochRandomSampler(train_ds, t.seed)
    )
    if t.images_per_epoch:
        inner = LimitSampler(inner, max(1, t.images_per_epoch // info.world_size))
    sampler = SkipSampler(inner)
    drop_last = len(inner) >= per_proc_batch  # tiny datasets keep their one short batch
    loader = DataLoader(
        train_ds, batch_size=per_proc_batch, sampler=sampler, num_workers=cfg.data.num_workers,
        collate_fn=collate_detections, worker_init_fn=seed_worker, drop_last=drop_last,
        pin_memory=device.type == "cuda", persistent_workers=False,
    )  # fmt: skip
    iters_per_epoch = len(inner) // per_proc_batch if drop_last else math.ceil(len(inner) / per_proc_batch)
    total_iters = iters_per_epoch * t.epochs
    if t.max_iters:
        total_iters = min(total_iters, t.max_iters)

    from mgdet.models import build_detector

    mkw = model_kwargs(cfg, len(class_names))
    det = build_detector(**mkw, pretrained=cfg.model.pretrained).to(device)
    freeze_backbone_stages(det, cfg.model.backbone, cfg.model.frozen_stages)
    cache = _feature_cache(cfg, det, info.enabled)
    model: torch.nn.Module = (
        DDP(det, device_ids=[device.index] if device.type == "cuda" else None) if info.enabled else det
    )
    groups = param_groups(det, t.weight_decay, t.backbone_lr_mult)
    if t.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=False)
    else:
        opt = torch.optim.AdamW(groups, lr=t.lr)
    use_amp = (device.type == "cuda") if t.amp is None else t.amp
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and device.type == "cuda")
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    ema = ModelEMA(det, t.ema_decay) if t.ema else None
    return Run(
        cfg=cfg, info=info, device=device, det=det, model=model, opt=opt, scaler=scaler, ema=ema, cache=cache,
        loader=loader, sampler=sampler, train_ds=train_ds, val_base=val_base, class_names=class_names,
        model_config=mkw, per_proc_batch=per_proc_batch, iters_per_epoch=iters_per_epoch, total_iters=total_iters,
        use_amp=use_amp, amp_dtype=amp_dtype, say=say,
    )  # fmt: skip


def resume_run(run: Run, resume: str | Path) -> TrainState:
    """Load ``resume`` into the run's model, optimiser, EMA, scaler and RNGs; returns where it stopped."""
    ckpt = load_checkpoint(resume, map_location=run.device)
    check_resume_identity(ckpt, resume, run.model_config, run.class_names)
    try:
        run.det.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise CheckpointError(f"{resume}: weights do not fit this config's model: {str(e)[:300]}") from None
    if not isinstance(ckpt.get("optimizer"), dict) or "rng" not in ckpt:
        raise CheckpointError(f"{resume}: holds weights only (no optimiser or RNG state, e.g. a zoo detector), "
                              "so it cannot be resumed; resume from a run's last.pth")  # fmt: skip
    run.opt.load_state_dict(ckpt["optimizer"])
    if run.ema is not None and ckpt.get("ema") is not None:
        run.ema.module.load_state_dict(ckpt["ema"])
        run.ema.updates = int(ckpt.get("ema_updates", 0))
    if ckpt.get("scaler"):
        run.scaler.load_state_dict(ckpt["scaler"])
    state = TrainState.from_checkpoint(ckpt)
    set_rng_state(ckpt["rng"])
    run.say(f"resumed from {resume}: epoch {state.epoch} (+{state.epoch_iter} steps), step {state.iteration}")
    return state


def train_one_epoch(run: Run, state: TrainState, stop: _StopFlag, result: TrainResult, progress: bool) -> bool:
    """The steps of epoch ``state.epoch`` (from ``state.epoch_iter`` on, after a resume); appends its history
    row and moves ``state`` to the next epoch. False when Ctrl-C stopped it (``state`` then holds the unfinished
    epoch, ready for a checkpoint)."""
    t, info = run.cfg.train, run.info
    run.sampler.set_epoch(state.epoch)
    run.train_ds.set_epoch(state.epoch)
    if run.cache is not None:  # the loader's workers (forked below) skip decoding the cached views
        run.train_ds.pixel_free_views = dict(run.cache.sizes)
    run.sampler.skip = state.epoch_iter * run.per_proc_batch
    run.model.train()
    keep_frozen_bn_eval(run.det)
    stats = state.partial if state.epoch_iter else EpochStats()
    t0, seen = time.perf_counter() - (stats.seconds if state.epoch_iter else 0.0), 0
    bar = tqdm(total=run.iters_per_epoch - state.epoch_iter, desc=f"epoch {state.epoch + 1}/{t.epochs}", unit="it",
               disable=not (progress and info.is_main), leave=False)  # fmt: skip
    for batch in run.loader:
        if state.epoch_iter >= run.iters_per_epoch or run.reached_max_iters(state):
            break
        result.failed_images += [f.message for f in batch.failed if f.message not in result.failed_images]
        # every image of a batch failed to decode (data.on_error=skip): under torchrun all ranks skip
        if not distr.all_agree(len(batch) > 0, info, run.device):
            continue
        batch = batch.to(run.device, non_blocking=True)
        lr = run.lr(state.iteration)
        losses, finite = train_step(run, batch, lr, state.iteration)
        if finite:
            state.bad_streak = 0
        else:
            stats.skipped += 1
            state.bad_streak += 1
            if state.bad_streak > t.max_bad_steps:
                last = run.out_dir / "last.pth"
                raise TrainingError(
                    f"{state.bad_streak} non-finite steps in a row (epoch {state.epoch + 1}, step "
                    f"{state.iteration}): lower train.lr (now {t.lr}), enable train.grad_clip, or check the data; "
                    + (f"the last good checkpoint is {last}" if last.is_file() else "no checkpoint was written")
                )
        state.iteration += 1
        state.epoch_iter += 1
        seen += len(batch)
        step = _step_stats(losses, batch.gt_labels)
        if finite:
            stats.add(step, losses["pos_scores"])
        if run.writer is not None and state.iteration % 20 == 0:
            for k, v in step.items():
                run.writer.add_scalar(f"train/{k}", v, state.iteration)
            run.writer.add_scalar("train/lr", lr, state.iteration)
        ips = seen * info.world_size / max(time.perf_counter() - t0, 1e-9)
        bar.set_postfix(loss=f"{step['loss']:.3f}", cls=f"{step['loss_cls']:.3f}", reg=f"{step['loss_reg']:.3f}",
                        lr=f"{lr:.2e}", ips=f"{ips:.1f}")  # fmt: skip
        bar.update(1)
        if stop.requested:
            break
    bar.close()
    if stop.requested:
        stats.seconds = time.perf_counter() - t0
        state.partial = stats
        return False
    row = stats.row(state.epoch_iter)  # means over the finite steps
    row.update(epoch=state.epoch + 1, iter=state.iteration, lr=run.lr(max(state.iteration - 1, 0)),
               skipped_steps=stats.skipped, epoch_time_s=round(time.perf_counter() - t0, 2))  # fmt: skip
    state.history.append(row)
    state.epoch, state.epoch_iter, state.partial = state.epoch + 1, 0, EpochStats()
    return True


def train_step(run: Run, batch: Any, lr: float, it: int) -> tuple[dict[str, Any], bool]:
    """Forward, assignment + loss, backward and optimiser step on one batch; the step is skipped (no update)
    when the loss or the gradient is not finite on any rank. Returns the losses (with the assignment) and
    whether the step was applied."""
    t, det, opt = run.cfg.train, run.det, run.opt
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_mult", 1.0)
    with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.use_amp):
        if run.cache is None:
            out = run.model(batch.images)
        else:  # single process only: the same neck + head as model(batch.images)
            feats = run.cache.features(det, batch.images, [m["view"] for m in batch.metas],
                                       [m["orig_size"] for m in batch.metas])  # fmt: skip
            out = det.forward_features(feats, tuple(batch.images.shape[-2:]))
    strategy = "iou" if it < t.static_warmup_iters else t.strategy  # warm-up: not in the paper
    params = det.assign_params.at_progress(it / max(run.total_iters, 1))  # train.mg_ramp (not in the paper)
    losses = det.loss(out, batch.gt_boxes, batch.gt_labels, strategy, params)
    loss = losses["loss"]
    finite = distr.all_agree(bool(torch.isfinite(loss)), run.info, run.device)  # skipped by all ranks or none
    if finite:
        opt.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(opt)
        norm = torch.nn.utils.clip_grad_norm_(det.parameters(), t.grad_clip if t.grad_clip > 0 else 1e12)
        finite = bool(torch.isfinite(norm))
    if finite:
        run.scaler.step(opt)
        run.scaler.update()
        if run.ema is not None:
            run.ema.update(det)
    else:
        opt.zero_grad(set_to_none=True)
    return losses, finite


def evaluate_and_save(
    run: Run, state: TrainState, result: TrainResult, evaluate: bool, progress: bool, final: bool = False
) -> None:
    """The end of an epoch (or of the run, ``final``): evaluate when asked (the metrics go into the last history
    row; a new best AP writes ``best.pth``), then write ``last.pth`` and ``history.csv``."""
    row = state.history[-1] if state.history else None
    if evaluate:
        model = run.ema.module if run.ema else run.det
        metrics = evaluate_model(model, run.val_base, run.cfg.eval, run.device, progress=progress).metrics
        if final:
            result.final_metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        if row is not None:
            row.update({k: metrics.get(k) for k in EVAL_KEYS})
        if metrics["AP"] > state.best_ap:
            state.best_ap = metrics["AP"]
            run.checkpoint(state, run.out_dir / "best.pth")
    result.checkpoint = run.checkpoint(state, run.out_dir / "last.pth")
    if run.info.is_main and row is not None:
        _write_history(run.out_dir / "history.csv", state.history)
        if run.writer is not None:
            for k in EVAL_KEYS:
                if row.get(k) is not None:
                    run.writer.add_scalar(f"val/{k}", row[k], int(row["epoch"]))


def _report(run: Run, state: TrainState, result: TrainResult) -> None:
    """The run's closing messages: cache use, skipped steps, images that failed to decode (every rank's)."""
    if run.cache is not None:
        run.say(run.cache.summary())
    bad = sum(int(r.get("skipped_steps") or 0) for r in state.history)
    if bad:
        run.say(f"skipped {bad} of {state.iteration} step(s) with a non-finite loss or gradient (their updates "
                "were not applied)")  # fmt: skip
    result.failed_images = distr.gather_lists(result.failed_images, run.info)  # every rank's, reported by rank 0
    if result.failed_images:
        run.say(f"skipped {len(result.failed_images)} image(s) that failed to decode during training "
                f"(data.on_error=skip), e.g. {result.failed_images[0]}")  # fmt: skip


def _step_stats(losses: dict[str, Any], gt_labels: torch.Tensor) -> dict[str, float]:
    """Loss parts and assignment statistics (:func:`mgdet.stats.assignment_stats`) of one step, as Python floats."""
    return {
        "loss": float(losses["loss"].detach()),
        "loss_cls": float(losses["loss_cls"].detach()),
        "loss_reg": float(losses["loss_reg"].detach()),
        **assignment_stats(losses["assignment"], gt_labels),
    }
