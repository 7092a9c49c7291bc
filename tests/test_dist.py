import os
import subprocess
import sys

import pytest
from distributed import free_port

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


PEER_DIES = """
import os
from wsl import dist
from wsl.errors import Failures
dist.init()
if dist.rank() == 1:
    os._exit(3)  # a worker killed between two collectives
try:
    dist.merge_all(Failures())
except RuntimeError as e:
    print("peer lost:", dist.peer_lost(e), "| a bug:", dist.peer_lost(RuntimeError("shape mismatch")))
finally:
    # As wsl.run does after an error. Without it, gloo's threads still run at interpreter exit and the
    # process aborts ("terminate called without an active exception") about one time in four.
    dist.destroy(synchronize=False)
"""


def test_a_collective_whose_peer_died_is_told_apart_from_a_bug(tmp_path):
    """Rank 0 of a real 2-process gloo group meets rank 1's death in a merge: wsl.run then stops it with one
    line (exit 1) instead of a traceback, while any other RuntimeError keeps its traceback."""
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", PEER_DIES],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for r in (0, 1)
    ]
    out = [p.communicate(timeout=120) for p in procs]
    assert procs[1].returncode == 3
    assert procs[0].returncode == 0, out[0][1][-3000:]
    assert "peer lost: True | a bug: False" in out[0][0], out[0]
