"""The stages stage=benchmark chains per CAM method (train if needed, cams, boxes, eval), run in-process.

A sub-stage gets a copy of the benchmark's configuration whose ``stage`` group is ``conf/stage/<stage>.yaml``
(plus a few overrides: split, limit, overwrite, task) and whose ``cam`` group is ``conf/cam/<method>.yaml``
with the run's ``cam.target_layer`` (the model's by default). The copy keeps the original's struct and
read-only flags, so a typo in an override still fails. What is on disk is reused, make-style: cams are
skipped when every file of the selected images is complete, boxes and evaluations when their output is
newer than their inputs. ``overwrite`` recomputes all of it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from wsl import io
from wsl.stages import UserError, common
from wsl.stages.camfiles import cams_dir
from wsl.stages.common import stage_config

log = logging.getLogger(__name__)

EVAL_TASKS = ("localization", "segmentation")


def _mtime(path: Path) -> float:
    return path.stat().st_mtime if path.is_file() else float("inf")


def _fresh(output: Path, *inputs: Path) -> bool:
    """True when ``output`` exists and is at least as new as every existing input."""
    return output.is_file() and all(_mtime(output) >= _mtime(p) for p in inputs if p.is_file())


def _cams_complete(cfg: DictConfig, ids: list[str], split: str) -> bool:
    folder = cams_dir(cfg, split)
    return (folder / "manifest.json").is_file() and all(io.is_complete_npz(folder / f"{i}.npz") for i in ids)


def run_chain(cfg: DictConfig, method: str, split: str, ids: list[str], tasks: list[str]) -> dict[str, str]:
    """cams -> boxes -> eval (``tasks``) for ``method`` on the images ``ids`` (the first of ``split``).

    Returns ``{step: "ran" | "reused" | "failed: <why>"}``; a failing step is logged and its
    dependants are skipped, so one broken method never stops the benchmark.
    """
    st = cfg.stage
    overwrite, limit = bool(st.overwrite), st.limit
    cams_cfg = stage_config(cfg, "cams", method, split=split, limit=limit, overwrite=overwrite)
    cams_manifest = cams_dir(cams_cfg, split) / "manifest.json"
    boxes_cfg = stage_config(cfg, "boxes", method, split=split)
    boxes_json = common.run_dir(cfg) / "boxes" / method / split / "boxes.json"
    # (step, its configuration, the steps it needs, whether its output on disk can be reused)
    steps: list[tuple[str, DictConfig, tuple[str, ...], bool]] = [
        ("cams", cams_cfg, (), not overwrite and _cams_complete(cams_cfg, ids, split)),
        ("boxes", boxes_cfg, ("cams",), not overwrite and _fresh(boxes_json, cams_manifest)),
    ]
    for task in tasks:
        metrics = common.run_dir(cfg) / "eval" / method / split / task / "metrics.json"
        needs = ("cams", "boxes") if task == "localization" else ("cams",)
        inputs = (cams_manifest, boxes_json) if task == "localization" else (cams_manifest,)
        sub = stage_config(cfg, "eval", method, split=split, task=task)
        steps.append((f"eval/{task}", sub, needs, not overwrite and _fresh(metrics, *inputs)))
    status: dict[str, str] = {}
    for name, sub, needs, reuse in steps:
        broken = [n for n in needs if status[n] not in ("ran", "reused")]
        if broken:
            status[name] = f"skipped: {broken[0]} did not run"
        else:
            status[name] = "reused" if reuse else _run_step(name, sub, method)
    return status


def _run_step(name: str, sub: DictConfig, method: str) -> str:
    from wsl.stages import load_stage

    try:
        load_stage(name.split("/")[0]).run(sub)
    except UserError as e:
        log.warning("benchmark: %s of %s failed: %s", name, method, e)
        return f"failed: {e}"
    except Exception as e:  # noqa: BLE001 - one broken method or evaluator must not stop the others
        log.exception("benchmark: %s of %s failed", name, method)
        return f"failed: {type(e).__name__}: {e}"
    return "ran"
