"""Distributed plumbing shared by every stage.

Under ``torchrun`` (one machine or several) the process group is initialised from its environment (gloo on
CPU, nccl on GPU); inside a submitit job with several tasks (``hydra/launcher=slurm`` or ``local``) the
same variables are first derived from the job's environment (:func:`adopt_scheduler_env`); without either
everything falls back to a single process (rank 0 of 1). Items are sharded deterministically by position
(``items[rank::world]``), so the union over ranks is the whole list whatever the world size.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Sequence
from typing import TypeVar

import torch
import torch.distributed as torch_dist

T = TypeVar("T")


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def adopt_scheduler_env() -> bool:
    """Inside a submitit job (SLURM or submitit's local executor) with several tasks, set torchrun's
    variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) from the job's
    own, so that :func:`init` sees one launcher whatever started the processes. The rendezvous host is the
    job's first node, the port 20000 + crc32(job id) mod 20000 (the same in every task of the job, different
    between the jobs of a multirun). torchrun's own variables, when present, win. True when it set them."""
    if launched_by_torchrun() or not os.environ.get("SUBMITIT_EXECUTOR"):
        return False
    import submitit  # the optional extra wsl[slurm]; present whenever a submitit job is running

    job = submitit.JobEnvironment()
    if job.num_tasks <= 1:
        return False
    port = 20000 + zlib.crc32(str(job.job_id).encode()) % 20000
    os.environ.update(
        RANK=str(job.global_rank),
        WORLD_SIZE=str(job.num_tasks),
        LOCAL_RANK=str(job.local_rank),
        LOCAL_WORLD_SIZE=str(job.num_tasks // max(1, job.num_nodes)),
        MASTER_ADDR=os.environ.get("MASTER_ADDR") or job.hostnames[0],
        MASTER_PORT=os.environ.get("MASTER_PORT") or str(port),
    )
    return True


def init(device: torch.device | None = None) -> None:
    """Initialise the default process group if launched by torchrun and not yet initialised."""
    if not launched_by_torchrun() or not torch_dist.is_available() or torch_dist.is_initialized():
        return
    use_nccl = device is not None and device.type == "cuda"
    if use_nccl:
        torch.cuda.set_device(local_rank())
    # torchrun's agent keeps ONE store for every attempt of a run; the keys a group leaves there (each
    # rank's address) would be read by the group of the next attempt after a restart (--max-restarts), which
    # then connects to processes that are gone and hangs. A prefix per attempt and per group of this process
    # (a multirun under torchrun makes several) gives each group keys of its own.
    global _groups
    store, rank_, world = next(torch_dist.rendezvous("env://"))
    prefix = f"wsl/attempt{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/group{_groups}"
    _groups += 1
    backend = "nccl" if use_nccl else "gloo"
    group_store = torch_dist.PrefixStore(prefix, store)
    torch_dist.init_process_group(backend=backend, store=group_store, rank=rank_, world_size=world)


_groups = 0  # process groups this process has made (see init)


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


# What the gloo and NCCL transports raise in a collective when another process of the group is gone.
_PEER_GONE = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "NCCL communicator")


def peer_lost(e: BaseException) -> bool:
    """Whether ``e``, raised in a collective (a merge, a barrier, DDP's gradient all-reduce), means that
    another process of the group died: the failure is that process's, and its own log says why."""
    if not is_initialized() or world_size() == 1 or not isinstance(e, RuntimeError):
        return False
    return isinstance(e, torch_dist.DistError) or any(sign in str(e) for sign in _PEER_GONE)


def destroy(synchronize: bool = True) -> None:
    """Tear the process group down (every stage, on success and on error: ``wsl.run``).

    With ``synchronize`` every rank first waits at a barrier, so that no rank destroys its connections
    while another still sends on them. After an error it is skipped (``synchronize=False``): the other
    ranks may be inside another collective, and a barrier would then hang until torchrun stops them.
    """
    if not is_initialized():
        return
    if synchronize and world_size() > 1:
        torch_dist.barrier()
    torch_dist.destroy_process_group()
