"""The measurement of one method by stage=benchmark: its chained stages, its scores, its probes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from wsl.stages import benchmark_probes as probes
from wsl.stages.benchmark_chain import run_chain
from wsl.stages.benchmark_scores import COLUMNS, eval_scores, map_scores

log = logging.getLogger(__name__)


def probe(status: dict[str, str], name: str, fn: Callable[[], dict]) -> dict:
    """Run one measurement; a failure is logged and recorded in ``status``, never raised."""
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - a method a probe cannot handle is reported, not fatal
        log.warning("benchmark: %s failed: %s: %s", name, type(e).__name__, e)
        status[name] = f"failed: {type(e).__name__}: {e}"
        return {}


@dataclass
class Shared:
    """What the measurement of every method shares: the data, the model and the probe subsets."""

    run: Path
    split: str
    ds: Any
    indices: list[int]
    model: torch.nn.Module
    device: torch.device
    layer: str
    tasks: list[str]
    blocks: list[str]
    step: float
    faith: list[probes.Item] = field(default_factory=list)
    sane: list[probes.Item] = field(default_factory=list)
    costly: list[probes.Item] = field(default_factory=list)


def measure(cfg: DictConfig, m: str, sh: Shared) -> dict[str, Any]:
    """The row of method ``m``: ``COLUMNS`` values (None: n/a), curves, ``flagged`` and ``status``.

    Chains its stages (stage=cams must succeed for the scores and faithfulness), reads the evaluators'
    scores, fills MaxBoxAccV2 / PxAP from the stored maps where they lack them, then runs the probes.
    """
    st = cfg.stage
    status = run_chain(cfg, m, sh.split, [sh.ds.ids[i] for i in sh.indices], sh.tasks)
    row: dict[str, Any] = {c.key: None for c in COLUMNS}
    if status["cams"] in ("ran", "reused"):
        folder = sh.run / "cams" / m / sh.split
        row.update(eval_scores(sh.run, m, sh.split))
        every = list(range(len(sh.ds)))  # like the evaluators: every map of the split on disk
        own = probe(status, "map scores", lambda: map_scores(sh.ds, folder, every, sh.step))
        row.update({k: v for k, v in own.items() if row.get(k) is None})
        steps = st.faithfulness.steps
        row.update(
            probe(status, "faithfulness", lambda: probes.faithfulness(sh.model, sh.faith, folder, steps))
        )
    threshold = st.sanity.threshold
    row.update(
        probe(
            status,
            "sanity",
            lambda: probes.sanity(sh.model, m, sh.layer, sh.sane, sh.blocks, threshold, cfg.seed),
        )
    )
    row.update(probe(status, "cost", lambda: probes.cost(sh.model, m, sh.layer, sh.costly, sh.device)))
    row["status"] = status
    return row
