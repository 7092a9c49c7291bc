import pytest

from wsl import dist


def test_shard_partitions_items_deterministically():
    items = list(range(11))
    shards = [dist.shard(items, r, 3) for r in range(3)]
    assert sorted(sum(shards, [])) == items
    assert shards[0] == [0, 3, 6, 9]
    assert dist.shard(items, 0, 1) == items


def test_shard_rejects_bad_rank():
    with pytest.raises(ValueError):
        dist.shard([1, 2], 2, 2)


def test_single_process_fallback(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dist.init()
    assert not dist.is_initialized() and dist.rank() == 0 and dist.world_size() == 1 and dist.is_main()
    assert dist.all_reduce_sum([1.0, 2.0]) == [1.0, 2.0]
    dist.barrier()
