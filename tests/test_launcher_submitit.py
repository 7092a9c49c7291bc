"""``hydra/launcher=local`` (hydra-submitit-launcher's local executor, the wsl[slurm] extra): a two-point
multirun of stage=cams, one submitit job per point with two tasks each; wsl.dist turns the job's variables
into torchrun's, so each job is a 2-rank group whose CAM files equal one process's."""

from __future__ import annotations

import shutil

import pytest
from distributed import cli_paths, ok, same_tree, wsl
from omegaconf import OmegaConf

from wsl import CONF_DIR, io
from wsl.layout import RunLayout

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="the wsl[slurm] extra is not installed")
RUN = "toy-small_cnn"
CAMS = ["stage=cams", "stage.batch_size=1", "stage.limit=4"]


def test_launcher_configs_set_the_documented_defaults():
    slurm = OmegaConf.load(CONF_DIR / "hydra" / "launcher" / "slurm.yaml")
    assert slurm.defaults[0] == "submitit_slurm"
    assert (slurm.nodes, slurm.gpus_per_node, slurm.tasks_per_node, slurm.timeout_min) == (1, 1, 1, 720)
    local = OmegaConf.load(CONF_DIR / "hydra" / "launcher" / "local.yaml")
    assert local.defaults[0] == "submitit_local" and local.tasks_per_node == 1


@pytest.mark.slow
def test_two_point_multirun_runs_one_two_task_job_per_point(trained_root, data_root, tmp_path):
    one, many = tmp_path / "one", tmp_path / "many"
    for root in (one, many):
        shutil.copytree(trained_root / RUN / "train", root / RUN / "train")
    for cam in ("gradcam", "hirescam"):
        ok(wsl([*CAMS, f"cam={cam}", *cli_paths(data_root, one)], tmp_path))
    args = ["-m", "hydra/launcher=local", "hydra.launcher.tasks_per_node=2", "cam=gradcam,hirescam"]
    ok(wsl([*args, *CAMS, *cli_paths(data_root, many)], tmp_path, timeout=900))
    jobs = sorted((many / RUN / "logs" / "multirun" / ".submitit").glob("*/*_submitted.pkl"))
    assert len(jobs) == 2, jobs  # one job per point
    for cam in ("gradcam", "hirescam"):
        a, b = (RunLayout(root / RUN).cams(cam, "val") for root in (one, many))
        same_tree(a, b)
        record = io.read_json(RunLayout.manifest(b))
        assert record["world_size"] == 2 and record["counts"] == {"done": 4, "skipped": 0, "failed": 0}


_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _slurm_task(monkeypatch, procid: int, ntasks: int = 8) -> None:
    for key in _TORCHRUN_VARS:  # set, then removed: monkeypatch restores (removes) what the test sets
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    env = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": str(ntasks),
           "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": str(procid // 4), "SLURM_PROCID": str(procid),
           "SLURM_LOCALID": str(procid % 4), "SLURM_JOB_NODELIST": "gpu[07-08]"}  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)


def test_slurm_task_gets_torchruns_variables(monkeypatch):
    import os

    from wsl import dist

    _slurm_task(monkeypatch, procid=5)  # 2 nodes x 4 tasks: the second task of the second node
    assert dist.adopt_scheduler_env()
    got = {k: os.environ[k] for k in _TORCHRUN_VARS}
    assert got["RANK"] == "5" and got["WORLD_SIZE"] == "8" and got["LOCAL_RANK"] == "1"
    assert got["LOCAL_WORLD_SIZE"] == "4" and got["MASTER_ADDR"] == "gpu07"  # the job's first node
    port = got["MASTER_PORT"]
    _slurm_task(monkeypatch, procid=0)  # every task of the job agrees on the rendezvous
    dist.adopt_scheduler_env()
    assert os.environ["MASTER_PORT"] == port and 20000 <= int(port) < 40000


def test_torchrun_or_a_single_task_is_left_alone(monkeypatch):
    import os

    from wsl import dist

    _slurm_task(monkeypatch, procid=0, ntasks=1)
    assert not dist.adopt_scheduler_env() and "RANK" not in os.environ
    _slurm_task(monkeypatch, procid=3)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")  # torchrun inside the job: its variables win
    assert not dist.adopt_scheduler_env() and os.environ["RANK"] == "1"
