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

import mgdet
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
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from mgdet.engine.config import ConfigError, RunConfig, augment_mode, save_config
from mgdet.engine.feature_cache import FeatureCache, backbone_is_frozen
from mgdet.engine.inference import evaluate_model
from mgdet.errors import MgdetError
from mgdet.outputs import check_run_folder, folder_lock
from mgdet.stats import SCORE_BINS, assignment_stats, epoch_means, histogram_mean, histogram_median, score_histogram

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
    """The body of :func:`train`, once the output folder is locked."""
    say = log if (log is not None and info.is_main) else (lambda _msg: None)
    device = distr.resolve_device(cfg.device, info)
    t = cfg.train
    out_dir = Path(cfg.output_dir)
    if info.is_main:
        check_run_folder(out_dir, resume, restart)  # before anything is written
    _seed_everything(t.seed, t.deterministic)

    # ---- data
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
    size = cfg.data.input_size
    transform = build_train_transform(size, augment_mode(cfg.data.augment))
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

    # ---- model, optimiser
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
        opt = torch.optim.SGD(groups, lr=t.lr, momentum=t.momentum, nesterov=False)
    else:
        opt = torch.optim.AdamW(groups, lr=t.lr)
    use_amp = (device.type == "cuda") if t.amp is None else t.amp
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and device.type == "cuda")
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    ema = ModelEMA(det, t.ema_decay) if t.ema else None

    # ---- resume
    start_epoch, it, epoch_iter, history, best_ap = 0, 0, 0, [], -1.0
    # the unfinished epoch's statistics (hist: counts of the positives' class scores, see mgdet.stats)
    partial: dict[str, Any] = {"sums": {}, "skipped": 0, "seconds": 0.0, "hist": [0] * SCORE_BINS}
    if resume:
        state = load_checkpoint(resume, map_location=device)
        check_resume_identity(state, resume, mkw, class_names)
        try:
            det.load_state_dict(state["model"])
        except RuntimeError as e:
            raise CheckpointError(f"{resume}: weights do not fit this config's model: {str(e)[:300]}") from None
        if not isinstance(state.get("optimizer"), dict) or "rng" not in state:
            raise CheckpointError(f"{resume}: holds weights only (no optimiser or RNG state, e.g. a zoo detector), "
                                  "so it cannot be resumed; resume from a run's last.pth")  # fmt: skip
        opt.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.module.load_state_dict(state["ema"])
            ema.updates = int(state.get("ema_updates", 0))
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, it, epoch_iter = int(state["epoch"]), int(state["iteration"]), int(state.get("epoch_iter", 0))
        history, best_ap = list(state.get("history", [])), float(state.get("best_ap", -1.0))
        if epoch_iter:
            partial = dict(state.get("partial_epoch", partial))
        set_rng_state(state["rng"])
        say(f"resumed from {resume}: epoch {start_epoch} (+{epoch_iter} steps), step {it}")

    if info.is_main:  # only now: a refused --resume leaves the run folder describing its weights
        out_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out_dir / "config.yaml")

    def checkpoint(path: Path, epoch: int, epoch_iter: int) -> Path | None:
        if not info.is_main:
            return None
        state = {
            "model": det.state_dict(), "optimizer": opt.state_dict(), "scaler": scaler.state_dict(),
            "ema": ema.module.state_dict() if ema else None, "ema_updates": ema.updates if ema else 0,
            "epoch": epoch, "iteration": it, "epoch_iter": epoch_iter, "rng": rng_state(),
            "config": cfg.to_dict(), "model_config": mkw, "class_names": class_names, "history": history,
            "best_ap": best_ap, "mgdet_version": mgdet.__version__, "partial_epoch": partial,
        }  # fmt: skip
        bad = non_finite(state["model"]) + non_finite(state["ema"] or {})
        if bad:  # never write a checkpoint that every verb would refuse (and that would replace a good one)
            raise TrainingError(
                f"the weights hold NaN or infinite values after step {it} (epoch {epoch}; e.g. {bad[:3]}): lower "
                f"train.lr (now {t.lr}) or enable train.grad_clip; {path} was not written"
                + (" (it keeps the previous checkpoint)" if path.is_file() else "")
            )
        return save_checkpoint(state, path)

    writer = _tensorboard(out_dir, tensorboard and info.is_main)
    result = TrainResult(out_dir, history)
    bad_streak, finished = 0, False
    with _StopFlag() as stop:
        for epoch in range(start_epoch, t.epochs):
            if t.max_iters and it >= t.max_iters:
                break
            sampler.set_epoch(epoch)
            train_ds.set_epoch(epoch)
            if cache is not None:  # the loader's workers (forked below) skip decoding the cached views
                train_ds.pixel_free_views = dict(cache.sizes)
            sampler.skip = epoch_iter * per_proc_batch
            model.train()
            keep_frozen_bn_eval(det)
            sums: dict[str, float] = dict(partial["sums"]) if epoch_iter else {}
            skipped = int(partial["skipped"]) if epoch_iter else 0
            hist = list(partial.get("hist") or [0] * SCORE_BINS) if epoch_iter else [0] * SCORE_BINS
            t0, seen = time.perf_counter() - (float(partial["seconds"]) if epoch_iter else 0.0), 0
            steps_left = iters_per_epoch - epoch_iter
            bar = tqdm(total=steps_left, desc=f"epoch {epoch + 1}/{t.epochs}", unit="it",
                       disable=not (progress and info.is_main), leave=False)  # fmt: skip
            for batch in loader:
                if epoch_iter >= iters_per_epoch or (t.max_iters and it >= t.max_iters):
                    break
                result.failed_images += [f.message for f in batch.failed if f.message not in result.failed_images]
                # every image of a batch failed to decode (data.on_error=skip): under torchrun all ranks skip
                if not distr.all_agree(len(batch) > 0, info, device):
                    continue
                batch = batch.to(device, non_blocking=True)
                lr = lr_at(it, total_iters, iters_per_epoch, t)
                for g in opt.param_groups:
                    g["lr"] = lr * g.get("lr_mult", 1.0)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    if cache is None:
                        out = model(batch.images)
                    else:  # single process only: the same neck + head as model(batch.images)
                        feats = cache.features(det, batch.images, [m["view"] for m in batch.metas],
                                               [m["orig_size"] for m in batch.metas])  # fmt: skip
                        out = det.forward_features(feats, tuple(batch.images.shape[-2:]))
                strategy = "iou" if it < t.static_warmup_iters else t.strategy  # warm-up: not in the paper
                losses = det.loss(out, batch.gt_boxes, batch.gt_labels, strategy)
                loss = losses["loss"]
                finite = distr.all_agree(bool(torch.isfinite(loss)), info, device)  # skipped by all ranks or none
                if finite:
                    opt.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.unscale_(opt)
                    norm = torch.nn.utils.clip_grad_norm_(det.parameters(), t.grad_clip if t.grad_clip > 0 else 1e12)
                    finite = bool(torch.isfinite(norm))
                if finite:
                    scaler.step(opt)
                    scaler.update()
                    if ema is not None:
                        ema.update(det)
                    bad_streak = 0
                else:
                    opt.zero_grad(set_to_none=True)
                    skipped += 1
                    bad_streak += 1
                    if bad_streak > t.max_bad_steps:
                        raise TrainingError(
                            f"{bad_streak} non-finite steps in a row (epoch {epoch + 1}, step {it}): lower "
                            f"train.lr (now {t.lr}), enable train.grad_clip, or check the data; "
                            + (f"the last good checkpoint is {out_dir / 'last.pth'}"
                               if (out_dir / "last.pth").is_file() else "no checkpoint was written")
                        )  # fmt: skip
                it += 1
                epoch_iter += 1
                seen += len(batch)
                stats = _step_stats(det, losses, batch.gt_labels)
                if finite:
                    for k, v in stats.items():
                        sums[k] = sums.get(k, 0.0) + v
                    hist = [a + b for a, b in zip(hist, score_histogram(losses["pos_scores"]))]
                if writer is not None and it % 20 == 0:
                    for k, v in stats.items():
                        writer.add_scalar(f"train/{k}", v, it)
                    writer.add_scalar("train/lr", lr, it)
                ips = seen * info.world_size / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix(loss=f"{stats['loss']:.3f}", cls=f"{stats['loss_cls']:.3f}",
                                reg=f"{stats['loss_reg']:.3f}", lr=f"{lr:.2e}", ips=f"{ips:.1f}")  # fmt: skip
                bar.update(1)
                if stop.requested:
                    break
            bar.close()
            if stop.requested:
                partial = {"sums": sums, "skipped": skipped, "seconds": time.perf_counter() - t0, "hist": hist}
                result.checkpoint = checkpoint(out_dir / "last.pth", epoch, epoch_iter)
                result.interrupted = True
                say(f"interrupted: checkpoint written to {out_dir / 'last.pth'}; continue with --resume")
                break
            row: dict[str, Any] = epoch_means(sums, epoch_iter - skipped)  # mean over the finite steps
            row.update(pos_score_median=histogram_median(hist), pos_score_mean=histogram_mean(hist))
            row.update(epoch=epoch + 1, iter=it, lr=lr_at(max(it - 1, 0), total_iters, iters_per_epoch, t),
                       skipped_steps=skipped, epoch_time_s=round(time.perf_counter() - t0, 2))  # fmt: skip
            history.append(row)
            last_epoch = epoch + 1 == t.epochs or bool(t.max_iters and it >= t.max_iters)
            if info.is_main and t.eval_interval and (epoch + 1) % t.eval_interval == 0 and not last_epoch:
                metrics = evaluate_model(ema.module if ema else det, val_base, cfg.eval, device,
                                         progress=progress).metrics  # fmt: skip
                row.update({k: metrics.get(k) for k in EVAL_KEYS})
                if metrics["AP"] > best_ap:
                    best_ap = metrics["AP"]
                    checkpoint(out_dir / "best.pth", epoch + 1, 0)
            epoch_iter = 0
            result.checkpoint = checkpoint(out_dir / "last.pth", epoch + 1, 0)
            if info.is_main:
                _write_history(out_dir / "history.csv", history)
                if writer is not None:
                    for k in EVAL_KEYS:
                        if row.get(k) is not None:
                            writer.add_scalar(f"val/{k}", row[k], epoch + 1)
            distr.barrier(info)
        else:
            finished = True
        finished = finished or bool(t.max_iters and it >= t.max_iters)

    if cache is not None:
        say(cache.summary())
    bad = sum(int(r.get("skipped_steps") or 0) for r in history)
    if bad:
        say(f"skipped {bad} of {it} step(s) with a non-finite loss or gradient (their updates were not applied)")
    result.failed_images = distr.gather_lists(result.failed_images, info)  # every rank's, reported by rank 0
    if result.failed_images:
        say(f"skipped {len(result.failed_images)} image(s) that failed to decode during training "
              f"(data.on_error=skip), e.g. {result.failed_images[0]}")  # fmt: skip
    if finished and evaluate_at_end and info.is_main and not result.interrupted:
        metrics = evaluate_model(ema.module if ema else det, val_base, cfg.eval, device, progress=progress).metrics
        result.final_metrics = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        if history:
            history[-1].update({k: metrics.get(k) for k in EVAL_KEYS})
            _write_history(out_dir / "history.csv", history)
        epoch_done = int(history[-1]["epoch"]) if history else 0
        if metrics["AP"] > best_ap:
            best_ap = metrics["AP"]
            checkpoint(out_dir / "best.pth", epoch_done, 0)
        result.checkpoint = checkpoint(out_dir / "last.pth", epoch_done, 0)
    if writer is not None:
        writer.close()
    distr.barrier(info)  # the other ranks wait for rank 0's evaluation: the process group is torn down together
    distr.cleanup(info)
    return result


def _step_stats(det: torch.nn.Module, losses: dict[str, torch.Tensor], gt_labels: torch.Tensor) -> dict[str, float]:
    """Loss parts and assignment statistics (:func:`mgdet.stats.assignment_stats`) of one step, as Python floats."""
    return {
        "loss": float(losses["loss"].detach()),
        "loss_cls": float(losses["loss_cls"].detach()),
        "loss_reg": float(losses["loss_reg"].detach()),
        **assignment_stats(det.last_assignment, gt_labels),
    }
