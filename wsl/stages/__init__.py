"""The stages: one module each, ``run(cfg) -> dict of metrics``, the only code that sees the configuration.

Two tables say everything about how they fit together: :data:`STAGES` maps a stage name to its module (a
test checks it against ``conf/stage/*.yaml``), :data:`NEEDS` says which stages' outputs each one reads.
Stages never import each other: ``wsl.run`` runs the missing prerequisites that :data:`RUNS_FIRST` allows
(the README promises that cams, benchmark and visualize train the missing classifier) and turns any other
missing input into one line naming the command to run.

    train -> cams -> boxes -> eval (localization)
                  -> seeds -> sec -> labels -> eval (segmentation)
             cams -> benchmark, visualize (any CAM method, side by side)
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

# stage -> the stages whose outputs it reads (for the same run, CAM method and split).
NEEDS: dict[str, tuple[str, ...]] = {
    "train": (),
    "cams": ("train",),
    "boxes": ("cams",),
    "seeds": ("cams",),
    "sec": ("seeds",),
    "labels": ("sec",),
    "eval": ("cams",),
    "benchmark": ("train",),
    "visualize": ("train",),
}

# (stage, prerequisite) pairs run first, with the prerequisite's default settings, when missing.
RUNS_FIRST: frozenset[tuple[str, str]] = frozenset(
    {("cams", "train"), ("benchmark", "train"), ("visualize", "train")}
)


def load_stage(name: str) -> ModuleType:
    return importlib.import_module(STAGES[name])
