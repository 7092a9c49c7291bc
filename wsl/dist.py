"""Distributed plumbing shared by every per-image stage.

Under ``torchrun`` the process group is initialised from its environment (gloo on CPU, nccl on GPU);
without it everything falls back to a single process (rank 0 of 1). Items are sharded deterministically
by position (``items[rank::world]``), so the union over ranks is the whole list whatever the world size.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

import torch
import torch.distributed as torch_dist

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(device: torch.device | None = None) -> None:
    """Initialise the default process group if launched by torchrun and not yet initialised."""
    if not launched_by_torchrun() or not torch_dist.is_available() or torch_dist.is_initialized():
        return
    use_nccl = device is not None and device.type == "cuda"
    if use_nccl:
        torch.cuda.set_device(local_rank())
    torch_dist.init_process_group(backend="nccl" if use_nccl else "gloo")


def is_initialized() -> bool:
    return torch_dist.is_available() and torch_dist.is_initialized()


def rank() -> int:
    if is_initialized():
        return torch_dist.get_rank()
    return int(os.environ.get("RANK", 0))


def world_size() -> int:
    if is_initialized():
        return torch_dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", 1))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    return rank() == 0


def shard(items: Sequence[T], rank_: int | None = None, world: int | None = None) -> list[T]:
    """This rank's share of ``items``: every ``world``-th item starting at ``rank``."""
    r = rank() if rank_ is None else rank_
    w = world_size() if world is None else world
    if not 0 <= r < w:
        raise ValueError(f"rank {r} outside world of size {w}")
    return list(items[r::w])


def barrier() -> None:
    if is_initialized():
        torch_dist.barrier()


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Sum a few numbers (counts, timings) over all ranks; identity in a single process."""
    if not is_initialized():
        return list(values)
    backend = torch_dist.get_backend()
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else torch.device("cpu")
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    torch_dist.all_reduce(t)
    return t.cpu().tolist()


def merge_all(acc: T) -> T:
    """``acc`` merged with the same accumulator of every other rank, in rank order (identity alone).

    Every accumulator of ``wsl.metrics`` and ``wsl.evaluation`` has ``merge(other) -> self``; this is the
    distributed reduction they are written for. The objects travel in memory between this job's own
    processes (``all_gather_object``); nothing is read from disk.
    """
    if not is_initialized() or world_size() == 1:
        return acc
    gathered: list = [None] * world_size()
    torch_dist.all_gather_object(gathered, acc)
    merged = gathered[0]
    for other in gathered[1:]:
        merged = merged.merge(other)
    return merged


def destroy() -> None:
    if is_initialized():
        torch_dist.destroy_process_group()
