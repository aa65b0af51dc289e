"""torch.distributed glue for runs launched with ``torchrun`` (never a home-made launcher).

``torchrun --nproc_per_node N -m mgdet train CONFIG`` sets RANK / WORLD_SIZE / LOCAL_RANK; a plain
``mgdet train`` runs as a single process. NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistInfo:
    """Initialise the process group when launched by torchrun; a no-op for a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return DistInfo(rank, world, local)


def resolve_device(device: str, info: DistInfo) -> torch.device:
    """``auto`` -> this process's CUDA device when available, else CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and info.enabled:
        device = f"cuda:{info.local_rank}"
    if device.startswith("cuda") and not torch.cuda.is_available():
        from mgdet.engine.config import ConfigError

        raise ConfigError(f"device {device!r} requested but CUDA is not available; use device=cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        from mgdet.engine.config import ConfigError

        raise ConfigError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None


def all_reduce_mean(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Mean over processes (identity for a single process)."""
    if not info.enabled:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / info.world_size


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    if not info.enabled:
        return t
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_agree(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True when ``flag`` holds on every process (a single process: ``flag``). Every rank gets the same answer, so
    a step that one rank must skip (an empty batch, a non-finite loss) is skipped by all of them together instead
    of leaving the others waiting in the gradient all-reduce."""
    if not info.enabled:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def gather_lists(items: list, info: DistInfo) -> list:
    """Every process's ``items`` concatenated (rank order, repeats removed); ``items`` for a single process."""
    if not info.enabled:
        return items
    parts: list[list | None] = [None] * info.world_size
    dist.all_gather_object(parts, items)
    return list(dict.fromkeys(x for part in parts for x in (part or [])))


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
