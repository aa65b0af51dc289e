"""Checkpoints: written atomically (temp file + fsync + rename), read with ``weights_only=True``.

A checkpoint is a dict of tensors and plain Python values only (no pickled objects):
``model``, ``optimizer``, ``ema`` (optional), ``epoch`` (epochs completed), ``iteration`` (global
optimiser steps), ``epoch_iter`` (steps done inside an unfinished epoch), ``rng`` (torch/cuda/numpy/python
states), ``config`` (the full :class:`RunConfig` dict), ``model_config`` (what ``build_detector`` needs),
``history`` (per-epoch rows) and ``mgdet_version``.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

import mgdet
from mgdet.catalog import DEFAULT_INPUT_SIZE
from mgdet.errors import MgdetError
from mgdet.limits import MAX_CLASSES, MAX_HEAD_DEPTH, MAX_INPUT_SIZE, MAX_LEVELS, MAX_WIDTH


class CheckpointError(MgdetError, RuntimeError):
    """A checkpoint that cannot be read or does not fit; the message names the file."""


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: a crash half-way never replaces a good previous file.

    The state is serialised in memory first, so a failed write (disk full, quota) is an :class:`OSError`
    naming ``path`` (not an error from deep inside torch's zip writer), and the previous file is kept.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(buffer.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror or str(e), str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; refuse files that would execute code.

    ``zoo:NAME`` is a detector of the shipped zoo (:mod:`mgdet.zoo`): its stored weights, sha256-checked,
    with the ImageNet backbone, as a checkpoint-like dict (no optimiser state).
    """
    from mgdet.zoo.catalog import is_zoo_ref

    if is_zoo_ref(path):
        from mgdet.zoo.store import load_state

        return load_state(str(path))
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" not in str(e) and "Unsupported global" not in str(e):  # not pickled objects: not a checkpoint
            raise CheckpointError(_not_a_checkpoint(path)) from None
        raise CheckpointError(
            f"{path}: refused to load: the file contains Python objects that could run code "
            f"(an mgdet checkpoint holds only tensors and plain values)"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise CheckpointError(_not_a_checkpoint(path, str(e).splitlines()[0] if str(e) else "")) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not an mgdet checkpoint (no 'model' entry)")
    return state


def _not_a_checkpoint(path: Path, detail: str = "") -> str:
    """The message for a file torch cannot read as a checkpoint (random bytes, an ONNX file, a truncated file)."""
    hint = " (an .onnx file runs with: mgdet detect FILE.onnx IMAGES --backend onnx)" if path.suffix == ".onnx" else ""
    why = f": {detail}" if detail else ""
    return f"{path}: not a torch checkpoint file (truncated, or another kind of file){hint}{why}"


#: ranges of the checkpoint fields checked before a detector is built (a crafted file cannot allocate much)
INPUT_SIZE_RANGE = (32, MAX_INPUT_SIZE)
FIELD_RANGES = {"neck_width": (1, MAX_WIDTH), "head_width": (1, MAX_WIDTH), "head_depth": (1, MAX_HEAD_DEPTH),
                "num_levels": (1, MAX_LEVELS)}  # fmt: skip


def validate_fields(state: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """Check the fields a detector is built from (types and ranges); returns ``model_config`` as a dict.

    Raises :class:`CheckpointError` naming the field and its value.
    """
    mc = state.get("model_config")
    if mc is None:
        raise CheckpointError(f"{path}: checkpoint has no 'model_config'; was it written by mgdet?")
    if not isinstance(mc, dict):
        raise CheckpointError(f"{path}: model_config must be a dict, got {type(mc).__name__}")

    def bad(key: str, want: str) -> CheckpointError:
        return CheckpointError(f"{path}: model_config.{key} = {mc.get(key)!r}: expected {want}")

    for key in ("name", "backbone"):
        if not isinstance(mc.get(key), str):
            raise bad(key, "a string")
    n = mc.get("num_classes")
    if not _int_in(n, 1, MAX_CLASSES):
        raise bad("num_classes", f"an integer from 1 to {MAX_CLASSES}")
    size = mc.get("input_size", DEFAULT_INPUT_SIZE)
    sizes = list(size) if isinstance(size, list | tuple) else [size]
    if not sizes or len(sizes) > 2 or not all(_int_in(v, *INPUT_SIZE_RANGE) for v in sizes):
        raise bad("input_size", f"an integer (or [h, w]) from {INPUT_SIZE_RANGE[0]} to {INPUT_SIZE_RANGE[1]}")
    for key, (lo, hi) in FIELD_RANGES.items():
        if key in mc and not _int_in(mc[key], lo, hi):
            raise bad(key, f"an integer from {lo} to {hi}")
    names = state.get("class_names")
    if names is not None and (not isinstance(names, list | tuple) or not all(isinstance(c, str) for c in names)):
        raise CheckpointError(f"{path}: class_names must be a list of strings, got {names!r:.200}")
    if names and len(names) != n:
        raise CheckpointError(f"{path}: {len(names)} class_names but model_config.num_classes = {n}")
    for key in ("epoch", "iteration", "epoch_iter"):
        if key in state and not _int_in(state[key], 0, 10**12):
            raise CheckpointError(f"{path}: {key} = {state[key]!r}: expected an integer >= 0")
    if "config" in state and not isinstance(state["config"], dict):
        raise CheckpointError(f"{path}: config must be a dict, got {type(state['config']).__name__}")
    return dict(mc)


#: model_config keys that must agree between a checkpoint and the config that resumes or fine-tunes it
IDENTITY_KEYS = ("name", "backbone", "num_classes", "input_size", "neck_width", "head_width", "head_depth")


def check_resume_identity(
    state: dict[str, Any], path: str | Path, model_config: dict[str, Any], class_names: list[str]
) -> None:
    """Refuse to resume ``state`` into another architecture or another class list (both shown)."""
    mc = validate_fields(state, path)
    diff = [f"{k}: checkpoint {mc.get(k)!r}, config {model_config.get(k)!r}" for k in IDENTITY_KEYS
            if k in mc and k in model_config and mc.get(k) != model_config.get(k)]  # fmt: skip
    if diff:
        raise CheckpointError(f"{path}: the checkpoint's model differs from the config's: {'; '.join(diff)}")
    check_class_names(state.get("class_names"), class_names, path)


def check_class_names(stored: Sequence[str] | None, dataset: Sequence[str], path: str | Path) -> None:
    """Refuse when a checkpoint's class names are not the dataset's, in the same order (both lists shown)."""
    if stored and list(stored) != list(dataset):
        raise CheckpointError(
            f"{path}: the checkpoint's classes {list(stored)} are not the dataset's {list(dataset)} (same names, "
            "same order needed: model class i is scored against dataset class i); use the dataset the model was "
            "trained on, map them explicitly (eval: --class-map same-names, or --class-map DATASET=CHECKPOINT,...), "
            "or set data.class_names to the checkpoint's list"
        )


def parse_class_map(spec: str) -> dict[str, str]:
    """``--class-map`` text -> ``{dataset name: checkpoint name}``: ``same-names`` (``{}``: classes matched by
    name, in any order) or comma-separated ``DATASET=CHECKPOINT`` renames (unlisted names match as they are)."""
    if spec.strip() == "same-names":
        return {}
    mapping: dict[str, str] = {}
    for part in (p.strip() for p in spec.split(",")):
        src, eq, dst = part.partition("=")
        if not eq or not src.strip() or not dst.strip():
            raise CheckpointError(f"--class-map {spec!r}: {part!r} is not DATASET=CHECKPOINT (or use same-names)")
        if src.strip() in mapping:
            raise CheckpointError(f"--class-map {spec!r}: dataset class {src.strip()!r} is mapped twice")
        mapping[src.strip()] = dst.strip()
    return mapping


def mapped_class_names(stored: Sequence[str], mapping: dict[str, str], path: str | Path) -> list[str]:
    """The class list to read a dataset with so that its label i is the checkpoint's class i: the checkpoint's
    names, each replaced by the dataset name mapped onto it (``mapping``: dataset name -> checkpoint name)."""
    unknown = sorted(set(mapping.values()) - set(stored))
    if unknown:
        raise CheckpointError(f"{path}: --class-map names {unknown}, which are not classes of the checkpoint "
                              f"{list(stored)}")  # fmt: skip
    onto: dict[str, str] = {}
    for src, dst in mapping.items():
        if dst in onto:
            raise CheckpointError(f"{path}: --class-map maps both {onto[dst]!r} and {src!r} onto {dst!r}")
        onto[dst] = src
    names = [onto.get(n, n) for n in stored]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise CheckpointError(f"{path}: with --class-map, {clash} would stand for two checkpoint classes "
                              f"({list(stored)}); map them apart")  # fmt: skip
    return names


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


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
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), *rest))  # noqa: NPY002
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _to_lists(x: Any) -> Any:
    return [_to_lists(v) for v in x] if isinstance(x, tuple | list) else x


def _to_tuples(x: Any) -> Any:
    return tuple(_to_tuples(v) for v in x) if isinstance(x, list) else x


def non_finite(weights: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of ``weights`` that hold a NaN or an infinity."""
    return [k for k, v in weights.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]  # fmt: skip


def load_detector(
    path: str | Path, map_location: str | torch.device = "cpu", use_ema: bool = True
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the detector stored in a checkpoint (EMA weights when present) -> (detector, run config dict)."""
    from mgdet.models import build_detector

    state = load_checkpoint(path, map_location)
    mc = validate_fields(state, path)
    mc["pretrained"] = None  # the weights come from the checkpoint
    try:
        det = build_detector(**mc)
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: cannot rebuild the detector from its model_config {mc}: {e}") from None
    weights = state["ema"] if use_ema and state.get("ema") is not None else state["model"]
    bad = non_finite(weights) if isinstance(weights, dict) else []
    if bad:
        raise CheckpointError(f"{path}: {len(bad)} weight tensors hold NaN or infinite values (e.g. {bad[:3]}): the "
                              "run that wrote it diverged; its detections would be meaningless")  # fmt: skip
    try:
        det.load_state_dict(weights)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not fit the detector: {' '.join(str(e).split())[:600]}") from None
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
