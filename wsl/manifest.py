"""``manifest.json``: what produced a folder (configuration, versions, commit, time, item counts)."""

from __future__ import annotations

import platform
import subprocess
import time
from importlib import metadata
from typing import Any

from wsl import CHECKOUT

PACKAGES = ("wsl", "torch", "torchvision", "numpy", "hydra-core", "opencv-python-headless", "pycocotools")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def git_commit() -> str | None:
    """The checkout's commit (None for an installed wheel or without git)."""
    if CHECKOUT is None:
        return None
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=CHECKOUT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


def manifest(
    stage: str,
    config: dict[str, Any],
    started: float,
    world_size: int = 1,
    done: int = 0,
    skipped: int = 0,
    failed: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """The manifest of a leaf folder; ``started`` is the ``time.time()`` at which the work began."""
    return {
        "stage": stage,
        "config": config,
        "versions": versions(),
        "git_commit": git_commit(),
        "world_size": world_size,
        "wall_time_s": round(time.time() - started, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "counts": {"done": done, "skipped": skipped, "failed": failed},
        **extra,
    }
