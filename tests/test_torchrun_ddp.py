"""DDP as stage=train uses it (wsl.models.training): every global batch and gradient is one process's.

The sampler is checked by hand-countable properties; the step by two gloo processes (torch.multiprocessing)
against one: a small conv net with BatchNorm, a batch holding a bad item (so that the ranks' shares are
unequal), SGD; the weights after the epoch must agree to float rounding.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, Dataset

from wsl.models.training import (
    GlobalBatchNorm2d,
    GlobalBatchSampler,
    Skipped,
    collate,
    sync_batchnorm,
    train_epoch,
)


@pytest.mark.parametrize("n, batch, world", [(48, 16, 1), (48, 16, 2), (50, 16, 3), (23, 4, 4)])
def test_ranks_share_every_global_batch_of_one_process(n, batch, world):
    one = GlobalBatchSampler(n, batch, seed=7)
    shards = [GlobalBatchSampler(n, batch, seed=7, rank=r, world=world) for r in range(world)]
    for epoch in (0, 3):
        for s in [one, *shards]:
            s.set_epoch(epoch)
        single = list(one)
        assert len(single) == n // batch and all(len(b) == batch for b in single)
        per_rank = [list(s) for s in shards]
        assert all(len(p) == len(single) for p in per_rank)
        for k, full in enumerate(single):
            parts = [p[k] for p in per_rank]
            assert sorted(sum(parts, [])) == sorted(full)  # the union is the batch, no item twice
            assert max(map(len, parts)) - min(map(len, parts)) <= 1  # shares as even as they can be
    first = {i for b in single for _, i in b}
    assert len(first) == (n // batch) * batch and first <= set(range(n))


def test_sampler_order_is_distributedsamplers():
    # the single-process order of earlier runs (DistributedSampler, world 1) is kept: resumes stay valid
    from torch.utils.data import DistributedSampler

    s, ref = GlobalBatchSampler(20, 5, seed=3), DistributedSampler(range(20), 1, 0, shuffle=True, seed=3)
    s.set_epoch(2)
    ref.set_epoch(2)
    assert [i for b in s for _, i in b] == list(ref)


def test_sampler_rejects_a_batch_smaller_than_the_world():
    with pytest.raises(ValueError):
        GlobalBatchSampler(10, 1, seed=0, rank=0, world=2)


class _Images(Dataset):
    """Fixed random images and labels; item 5 is a bad item."""

    def __init__(self, n: int = 24) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, 12, 12, generator=g)
        self.y = (torch.rand(n, 4, generator=g) > 0.5).float()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, key):
        _, i = key
        return Skipped(str(i), "bad") if i == 5 else (self.x[i], self.y[i])


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )


def _train(rank: int, world: int, sync: bool = True) -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    model = sync_batchnorm(_net(), torch.device("cpu")) if sync else _net()
    net = nn.parallel.DistributedDataParallel(model) if world > 1 else model
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    sampler = GlobalBatchSampler(24, 8, seed=1, rank=rank, world=world)
    for epoch in range(2):
        sampler.set_epoch(epoch)
        loader = DataLoader(_Images(), batch_sampler=sampler, collate_fn=collate)
        train_epoch(net, loader, opt, sched, "bce", torch.device("cpu"), "test")
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _worker(rank: int, world: int, init_file: str, out: str) -> None:
    torch_dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        states = {sync: _train(rank, world, sync) for sync in (True, False)}
        if rank == 0:
            torch.save({f"{sync}.{k}": v for sync, state in states.items() for k, v in state.items()}, out)
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_take_the_single_process_steps(tmp_path):
    single = _train(0, 1)
    out = tmp_path / "two.pt"
    os.environ.pop("RANK", None)
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    both = torch.load(out, weights_only=True)
    for k in single:
        np.testing.assert_allclose(both[f"True.{k}"].numpy(), single[k].numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=k)  # fmt: skip
    # the control: per-rank BatchNorm statistics (plain DDP) give other weights, which this test sees
    assert not torch.allclose(both["False.0.weight"], single["0.weight"], rtol=1e-3, atol=1e-4)


def test_global_batchnorm_alone_is_batchnorm():
    torch.manual_seed(0)
    bn, gbn = nn.BatchNorm2d(5), GlobalBatchNorm2d(5)
    gbn.load_state_dict(bn.state_dict())
    x = torch.randn(4, 5, 3, 3)
    torch.testing.assert_close(gbn(x), bn(x))
    torch.testing.assert_close(gbn.running_var, bn.running_var)
    assert sync_batchnorm(bn, torch.device("cpu")) is bn  # one process: unchanged
