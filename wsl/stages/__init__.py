"""The stages: one module each, ``run(cfg) -> dict of metrics``, the only code that sees the configuration.

Two tables say everything about how they fit together: :data:`STAGES` maps a stage name to its module (a
test checks it against ``conf/stage/*.yaml``), :data:`NEEDS` says which stages' outputs each one reads.
Stages never import each other: ``wsl.run`` runs the missing prerequisites that :data:`RUNS_FIRST` allows
(the README promises that cams, benchmark and visualize train the missing classifier) and turns any other
missing input into one line naming the command to run.

    train -> cams -> boxes -> eval (localization)
                  -> seeds -> sec -> labels -> eval (segmentation)
             cams -> affinity -> randomwalk -> eval (segmentation)
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
    "affinity": "wsl.stages.affinity",
    "randomwalk": "wsl.stages.randomwalk",
    "segtrain": "wsl.stages.segtrain",
    "eval": "wsl.stages.eval",
    "benchmark": "wsl.stages.benchmark",
    "visualize": "wsl.stages.visualize",
    "explain": "wsl.stages.explain",
}

# stage -> the stages whose outputs it reads (for the same run, CAM method and split).
NEEDS: dict[str, tuple[str, ...]] = {
    "train": (),
    "cams": ("train",),
    "boxes": ("cams",),
    "seeds": ("cams",),
    "sec": ("seeds",),
    "labels": ("sec",),
    "affinity": ("cams",),
    "randomwalk": ("cams", "affinity"),
    "segtrain": (),  # stage.labels picks the refiner (labels or randomwalk): the stage checks its input
    "eval": ("cams",),
    "benchmark": ("train",),
    "visualize": ("train",),
    "explain": ("train",),
}

# (stage, prerequisite) pairs run first, with the prerequisite's default settings, when missing.
RUNS_FIRST: frozenset[tuple[str, str]] = frozenset(
    {("cams", "train"), ("benchmark", "train"), ("visualize", "train"), ("explain", "train")}
)


# stage -> (what it writes under outputs/<run>/, what it does): the stage table of ``--help``.
WRITES: dict[str, tuple[str, str]] = {
    "train": ("train/{last,best}.pt", "a multi-label classifier on the image-level labels"),
    "cams": ("cams/<cam>/<split>/<id>.npz", "class activation maps of every image (trains first if needed)"),
    "boxes": ("boxes/<cam>/<split>/boxes.json", "maps -> boxes, COCO results format"),
    "seeds": ("seeds/<cam>/<split>/<id>.png", "maps -> SEC's foreground / background cues"),
    "sec": ("sec/<cam>/final.pt", "SEC: seed, expand and constrain training of a segmentation network"),
    "labels": ("labels/<cam>/<split>/<id>.png", "pseudo-labels: the SEC network + a dense CRF"),
    "affinity": ("affinity/<cam>/final.pt", "IRN: a class-boundary network on the CAMs' confident regions"),
    "randomwalk": ("randomwalk/<cam>/<split>/<id>.png", "pseudo-labels: CAMs + random walk on affinities"),
    "segtrain": ("segtrain/<labels>/<cam>/final.pt", "the final network, on a refiner's pseudo-labels"),
    "eval": ("eval/<cam>/<split>/<task>/", "localization and segmentation scores against the annotations"),
    "benchmark": ("benchmark/report.html", "every CAM method side by side: quality, faithfulness, cost"),
    "visualize": ("visualize/<split>/", "overlays of chosen images: methods, layers, failures"),
    "explain": ("explain/<stem>.png", "your own image (or folder): its top classes, one overlay each"),
}


def stage_table() -> str:
    """The stages, what each reads and writes, one line each (for ``--help``)."""
    rows = [("stage", "reads", "writes", "what it does")]
    rows += [(n, ", ".join(NEEDS[n]) or "dataset", *WRITES[n]) for n in STAGES]
    width = [max(len(r[k]) for r in rows) for k in range(3)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, [*width, 0])).rstrip() for r in rows)


def load_stage(name: str) -> ModuleType:
    return importlib.import_module(STAGES[name])
