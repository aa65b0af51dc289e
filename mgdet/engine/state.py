"""What a training run carries from step to step and from one process to the next: the checkpoint schema,
written once. :class:`EpochStats` is the unfinished epoch's statistics, :class:`TrainState` the run's position
(epoch, step, history, best AP); ``to_checkpoint`` / ``from_checkpoint`` are the only places that know the keys
of a ``last.pth``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

import mgdet
from mgdet.engine.checkpoint import rng_state
from mgdet.stats import SCORE_BINS, epoch_means, histogram_mean, histogram_median, score_histogram


@dataclass
class EpochStats:
    """Running sums of one epoch: per-step values (losses, assignment statistics) over the finite steps, the
    skipped (non-finite) steps, the seconds spent and the histogram of the positives' class scores."""

    sums: dict[str, float] = field(default_factory=dict)
    skipped: int = 0
    seconds: float = 0.0
    hist: list[int] = field(default_factory=lambda: [0] * SCORE_BINS)

    def add(self, stats: dict[str, float], pos_scores: torch.Tensor) -> None:
        """One finite step's values and the class scores of its positives."""
        for k, v in stats.items():
            self.sums[k] = self.sums.get(k, 0.0) + v
        self.hist = [a + b for a, b in zip(self.hist, score_histogram(pos_scores))]

    def row(self, steps: int) -> dict[str, Any]:
        """The epoch's ``history.csv`` values from ``steps`` steps (the skipped ones left out of the means)."""
        row: dict[str, Any] = epoch_means(self.sums, steps - self.skipped)
        row.update(pos_score_median=histogram_median(self.hist), pos_score_mean=histogram_mean(self.hist))
        return row

    def to_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "skipped": self.skipped, "seconds": self.seconds, "hist": list(self.hist)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> EpochStats:
        d = d or {}
        return cls(dict(d.get("sums") or {}), int(d.get("skipped", 0)), float(d.get("seconds", 0.0)),
                   list(d.get("hist") or [0] * SCORE_BINS))  # fmt: skip


@dataclass
class TrainState:
    """Where a run stands: ``epoch`` epochs finished, ``iteration`` steps in all, ``epoch_iter`` of them in the
    unfinished epoch (whose statistics are ``partial``), the per-epoch ``history`` and the best AP so far."""

    epoch: int = 0
    iteration: int = 0
    epoch_iter: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_ap: float = -1.0
    partial: EpochStats = field(default_factory=EpochStats)
    bad_streak: int = 0  # non-finite steps in a row (not saved: a resumed run starts a new count)

    def to_checkpoint(
        self,
        *,
        model: dict[str, Any],
        optimizer: dict[str, Any],
        scaler: dict[str, Any],
        ema: dict[str, Any] | None,
        ema_updates: int,
        config: dict[str, Any],
        model_config: dict[str, Any],
        class_names: list[str],
    ) -> dict[str, Any]:
        """The checkpoint of this state with the given weights and optimiser state (plus the RNG states)."""
        return {
            "model": model, "optimizer": optimizer, "scaler": scaler, "ema": ema, "ema_updates": ema_updates,
            "epoch": self.epoch, "iteration": self.iteration, "epoch_iter": self.epoch_iter, "rng": rng_state(),
            "config": config, "model_config": model_config, "class_names": class_names, "history": self.history,
            "best_ap": self.best_ap, "mgdet_version": mgdet.__version__, "partial_epoch": self.partial.to_dict(),
        }  # fmt: skip

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any]) -> TrainState:
        """The position of a checkpoint written by :meth:`to_checkpoint` (or by older mgdet versions)."""
        epoch_iter = int(state.get("epoch_iter", 0))
        return cls(
            epoch=int(state["epoch"]), iteration=int(state["iteration"]), epoch_iter=epoch_iter,
            history=list(state.get("history", [])), best_ap=float(state.get("best_ap", -1.0)),
            partial=EpochStats.from_dict(state.get("partial_epoch")) if epoch_iter else EpochStats(),
        )  # fmt: skip
