"""wsl.threads: the cgroup quota is read like the kernel writes it; the default shares the cores out."""

from __future__ import annotations

import pytest

from wsl import threads


def test_cgroup_quota_v2_and_v1(tmp_path):
    assert threads.cgroup_cpus(tmp_path) is None  # no cgroup files: no quota
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.cgroup_cpus(tmp_path) is None  # v2 without a limit
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert threads.cgroup_cpus(tmp_path) == pytest.approx(1.5)
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert threads.cgroup_cpus(v1) == pytest.approx(3.0)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # v1 without a limit
    assert threads.cgroup_cpus(v1) is None


def test_default_threads_leave_the_workers_their_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    assert threads.default_threads(num_workers=2) == 6
    assert threads.default_threads(num_workers=2, processes_per_node=2) == 2  # 4 cores each, 2 workers
    assert threads.default_threads(num_workers=16) == 1  # never below one thread


def test_available_cores_is_the_affinity_capped_by_the_quota(monkeypatch):
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.setattr(threads, "cgroup_cpus", lambda: None)
    assert threads.available_cores() == 4
    monkeypatch.setattr(threads, "cgroup_cpus", lambda: 1.5)
    assert threads.available_cores() == 1  # a quota of 1.5 cores: one full core
    monkeypatch.setattr(threads, "cgroup_cpus", lambda: 0.5)
    assert threads.available_cores() == 1  # never below one
