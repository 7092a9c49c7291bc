"""The stages. Each module has ``run(cfg) -> dict`` and is the only code that sees the configuration.

One explicit table maps a stage name to its module; a test checks it against ``conf/stage/*.yaml``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

STAGES: dict[str, str] = {
    "train": "wsl.stages.train",
    "cams": "wsl.stages.cams",
    "boxes": "wsl.stages.boxes",
    "seeds": "wsl.stages.seeds",
    "sec": "wsl.stages.sec",
    "labels": "wsl.stages.labels",
    "eval": "wsl.stages.eval",
    "benchmark": "wsl.stages.benchmark",
    "visualize": "wsl.stages.visualize",
}


class UserError(RuntimeError):
    """A problem the user can fix (missing input, bad option): reported as one line, no traceback."""


def load_stage(name: str) -> ModuleType:
    return importlib.import_module(STAGES[name])
