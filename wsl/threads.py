"""How many threads torch's CPU kernels should use: the cores this process may really use.

``os.cpu_count()`` counts the machine's cores; a container or a batch job may get fewer (CPU affinity,
a cgroup quota), and DataLoader worker processes and other torchrun processes on the node share them. Too
many threads on too few cores make torch's kernels wait on each other (measured on a loaded 2-core machine:
stage=cams at 3-5 images/s with the default against 34 with one thread).
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in cores (cgroup v2 ``cpu.max``, v1 ``cfs_quota``), or None."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by the cgroup quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpus()
    return max(1, min(cores, math.floor(quota)) if quota else cores)


def default_threads(num_workers: int, processes_per_node: int = 1) -> int:
    """Intra-op threads for one of ``processes_per_node`` processes that each run ``num_workers``
    DataLoader workers: the available cores shared out, the workers' cores left to them, at least 1."""
    per_process = available_cores() // max(1, processes_per_node)
    return max(1, per_process - max(0, num_workers))
