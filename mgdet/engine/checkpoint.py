"""Checkpoints: written atomically (temp file + fsync + rename), read with ``weights_only=True``.

A checkpoint is a dict of tensors and plain Python values only (no pickled objects):
``model``, ``optimizer``, ``ema`` (optional), ``epoch`` (epochs completed), ``iteration`` (global
optimiser steps), ``epoch_iter`` (steps done inside an unfinished epoch), ``rng`` (torch/cuda/numpy/python
states), ``config`` (the full :class:`RunConfig` dict), ``model_config`` (what ``build_detector`` needs),
``history`` (per-epoch rows) and ``mgdet_version``.
"""

from __future__ import annotations

import os
import pickle
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mgdet


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit; the message names the file."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: a crash half-way never replaces a good previous file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; refuse files that would execute code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused to load: the file contains Python objects that could run code "
            f"(only tensors and plain values are accepted). Details: {str(e).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, OSError) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or not a torch file): {e}") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not an mgdet checkpoint (no 'model' entry)")
    return state


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may touch, as tensors / plain values (weights_only-safe)."""
    np_state = np.random.get_state()  # noqa: NPY002 (third-party code may use the legacy global RNG)
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))  # noqa: NPY002
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, tuple | list) else x


def _to_tuples(x: Any) -> Any:
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def load_detector(
    path: str | Path, map_location: str | torch.device = "cpu", use_ema: bool = True
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the detector stored in a checkpoint (EMA weights when present) -> (detector, run config dict)."""
    from mgdet.models import build_detector

    state = load_checkpoint(path, map_location)
    if "model_config" not in state:
        raise CheckpointError(f"{path}: checkpoint has no 'model_config'; was it written by mgdet?")
    mc = dict(state["model_config"])
    mc["pretrained"] = None  # the weights come from the checkpoint
    try:
        det = build_detector(**mc)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the detector from its model_config {mc}: {e}") from None
    weights = state["ema"] if use_ema and state.get("ema") is not None else state["model"]
    try:
        det.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the detector: {str(e).splitlines()[0]}") from None
    det.eval()
    return det.to(map_location), state.get("config", {})


def describe(state: dict[str, Any]) -> dict[str, Any]:
    """A short summary of a checkpoint for tables."""
    return {
        "epoch": state.get("epoch"),
        "iteration": state.get("iteration"),
        "mgdet_version": state.get("mgdet_version", "?"),
        "current_version": mgdet.__version__,
    }
