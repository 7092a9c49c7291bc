"""torchrun beyond one group on one machine: two simulated nodes, repeated launches, elastic restarts.

- Two ``torchrun --nnodes=2`` groups (one process each, c10d rendezvous on localhost) write the CAM files
  of one process.
- Twelve 2-process launches of stage=seeds all exit 0 (pytorch#190489: a gloo group never destroyed
  aborts with ``terminate called without an active exception`` at interpreter exit; wsl.run now tears it
  down after a barrier).
- A worker SIGKILLed in the middle of stage=cams is restarted by ``torchrun --max-restarts=1``: the stage
  completes with every file of one process, none twice, no temporary file left (one planted
  from an earlier killed run included).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from distributed import REPO_ROOT, cli_paths, ok, same_tree, wsl, wsl_nodes

from wsl import io
from wsl.layout import RunLayout

pytestmark = pytest.mark.slow
RUN = "toy-small_cnn"
CAMS = ["stage=cams", "stage.batch_size=1"]


def _cams(root: Path) -> Path:
    return RunLayout(root / RUN).cams("gradcam", "val")


@pytest.fixture(scope="module")
def one_process(trained_root, data_root, tmp_path_factory) -> Path:
    """The session's classifier and its val CAMs made by one process."""
    out = tmp_path_factory.mktemp("cams_one")
    shutil.copytree(trained_root / RUN / "train", out / RUN / "train")
    ok(wsl([*CAMS, *cli_paths(data_root, out)], out))
    return out


def _with_classifier(one_process: Path, out: Path) -> Path:
    shutil.copytree(one_process / RUN / "train", out / RUN / "train")
    return out


def _complete_run(folder: Path, one_process: Path) -> None:
    same_tree(_cams(one_process), folder)  # same names (no temporary, none missing), same bytes
    record = io.read_json(RunLayout.manifest(folder))
    counts = record["counts"]
    assert counts["done"] + counts["skipped"] == 24 and counts["failed"] == 0, counts
    assert record["world_size"] == 2


def test_two_nodes_write_the_files_of_one_process(one_process, data_root, tmp_path):
    out = _with_classifier(one_process, tmp_path / "two_nodes")
    results = wsl_nodes([*CAMS, *cli_paths(data_root, out)], tmp_path)
    for code, log in results:
        assert code == 0, log[-4000:]
        assert "terminate called" not in log, log[-4000:]
    _complete_run(_cams(out), one_process)


def test_twelve_launches_exit_cleanly(one_process, data_root, tmp_path):
    out = tmp_path / "seeds"
    shutil.copytree(one_process / RUN, out / RUN)
    args = [
        "stage=seeds",
        "stage.split=val",
        "stage.limit=4",
        "stage.overwrite=true",
        "stage.crf_processes=0",
    ]
    for launch in range(12):
        r = wsl([*args, *cli_paths(data_root, out)], tmp_path, nproc=2)
        assert r.returncode == 0, f"launch {launch + 1}: exit {r.returncode}\n{(r.stdout + r.stderr)[-3000:]}"
        assert "terminate called" not in r.stderr, f"launch {launch + 1}: {r.stderr[-3000:]}"
        assert "destroy_process_group() was not called" not in r.stderr, r.stderr[-3000:]


def test_killed_worker_is_restarted_and_the_stage_completes(one_process, data_root, tmp_path):
    out = _with_classifier(one_process, tmp_path / "elastic")
    # What a writer killed mid-file leaves (wsl.io.atomic_path's temporary), from an earlier run: the write
    # of that file removes it. SIGKILL/SIGTERM timing decides whether this run's attempt leaves one too.
    stale = _cams(out) / ".val_00012.npz.logkerdu.npz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"PK half a file")
    os.utime(stale, (time.time() - 3600,) * 2)
    r = wsl(
        [*CAMS, *cli_paths(data_root, out)],
        tmp_path,
        nproc=2,
        torchrun_args=["--max-restarts=1"],
        script=str(REPO_ROOT / "tests" / "distributed.py"),
        WSL_KILL_AFTER="*.npz:4",  # rank 1 of the first attempt: SIGKILL after its 4th CAM file
        WSL_KILL_RANK="1",
    )
    ok(r)
    # torchrun saw the attempt fail, then restarted it. The failure it names is the SIGKILL (exit -9) or, when
    # both exits reach it in one poll, rank 0's (exit 1: it stops with one line when its peer is gone).
    assert "failed (exitcode: -9)" in r.stderr or "failed (exitcode: 1)" in r.stderr, r.stderr[-3000:]
    _complete_run(_cams(out), one_process)
    assert io.read_json(RunLayout.manifest(_cams(out)))["counts"]["skipped"] >= 4  # resumed, not redone
