"""What every stage shares: devices, seeds, datasets and models from the config, run folders, manifests."""

from __future__ import annotations

import copy
import logging
import os
import platform
import random
import subprocess
import sys
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm import tqdm

from wsl import dist, io
from wsl.stages import UserError

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = REPO_ROOT / "conf"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device={name} asked for, but no CUDA device is available; use device=auto or cpu")
    return dev


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_dir(cfg: DictConfig) -> Path:
    return Path(cfg.run_dir)


def progress(iterable: Iterable, desc: str, total: int | None = None, unit: str = "img") -> tqdm:
    """One tqdm bar per stage, on rank 0 only, quiet when stderr is not a terminal."""
    disable = not dist.is_main() or (not sys.stderr.isatty() and not os.environ.get("WSL_PROGRESS"))
    return tqdm(iterable, desc=desc, total=total, unit=unit, disable=disable, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------- datasets


def prepare_dataset(cfg: DictConfig) -> None:
    """Create the dataset if it is generated on demand (the toy data); only rank 0 writes it."""
    from wsl.data.toy import ToyDatasetError

    prep = cfg.dataset.get("prepare")
    if prep is None:
        return
    try:
        if dist.is_main():
            instantiate(prep)
        dist.barrier()
        if not dist.is_main():
            instantiate(prep)  # already there: only checks the marker
    except ToyDatasetError as e:
        raise UserError(str(e)) from None


def build_dataset(cfg: DictConfig, split: str, with_masks: bool = False, with_boxes: bool = False):
    """The dataset of ``split`` as configured; a missing root is one clear error."""
    from hydra.errors import InstantiationException

    prepare_dataset(cfg)
    try:
        return instantiate(cfg.dataset.loader, split=split, with_masks=with_masks, with_boxes=with_boxes)
    except InstantiationException as e:  # Hydra wraps the loader's own error
        if isinstance(e.__cause__, FileNotFoundError | ValueError):
            raise UserError(str(e.__cause__)) from None
        raise
    except FileNotFoundError as e:
        raise UserError(str(e)) from None


def split_name(cfg: DictConfig) -> str:
    """The split a per-image stage works on: ``stage.split``, which may be ``train``/``val`` or an alias."""
    split = cfg.stage.get("split", "val")
    return {"train": cfg.dataset.train_split, "val": cfg.dataset.val_split}.get(split, split)


def pending(
    ids: list[str], limit: int | None, overwrite: bool, is_done, what: str, out: Path
) -> tuple[list[int], list[int], int]:
    """This rank's share of the first ``limit`` images and, among them, those still to do.

    ``is_done(image_id)`` says whether an image's output is complete (a re-run skips it unless
    ``overwrite``). Returns ``(mine, todo, skipped)``.
    """
    mine = dist.shard(list(range(len(ids) if limit is None else min(limit, len(ids)))))
    todo = [i for i in mine if overwrite or not is_done(ids[i])]
    skipped = len(mine) - len(todo)
    if skipped:
        log.info("%d of %d images already have %s in %s: skipped", skipped, len(mine), what, out)
    return mine, todo, skipped


# --------------------------------------------------------------------------------------------- models


def classifier_checkpoint(cfg: DictConfig) -> Path:
    ckpt = cfg.model.get("checkpoint")
    return Path(ckpt) if ckpt else run_dir(cfg) / "train" / "best.pt"


def stage_config(cfg: DictConfig, stage: str, method: str | None = None, **overrides: Any) -> DictConfig:
    """A copy of ``cfg`` running ``stage`` (its YAML defaults + ``overrides``) with CAM ``method``."""
    node = OmegaConf.load(CONF_DIR / "stage" / f"{stage}.yaml")
    for key, value in overrides.items():
        if key not in node:
            raise KeyError(f"conf/stage/{stage}.yaml has no key {key!r}")
        node[key] = value
    sub = copy.deepcopy(cfg)
    readonly = OmegaConf.is_readonly(cfg)
    OmegaConf.set_readonly(sub, False)
    with open_dict(sub):
        sub.stage = node
        if method is not None:
            cam = OmegaConf.load(CONF_DIR / "cam" / f"{method}.yaml")
            cam.target_layer = cfg.cam.target_layer
            sub.cam = cam
    OmegaConf.set_struct(sub, True)
    OmegaConf.set_readonly(sub, readonly)
    return sub


def ensure_classifier(cfg: DictConfig) -> None:
    """Train the run's classifier with ``conf/stage/train.yaml`` if it has none and no model.checkpoint."""
    if not classifier_checkpoint(cfg).is_file() and not cfg.model.get("checkpoint"):
        log.info("no classifier in run %s: training one first (stage=train, its default settings)", cfg.run)
        from wsl.stages import train

        train.run(stage_config(cfg, "train"))


def load_classifier(cfg: DictConfig, device: torch.device, train_if_missing: bool = False) -> torch.nn.Module:
    """The run's trained classifier (``model.checkpoint`` or ``train/best.pt``), in eval mode on ``device``.

    With ``train_if_missing`` a missing checkpoint of the run is trained first, saying so.
    """
    path = classifier_checkpoint(cfg)
    if not path.is_file():
        if train_if_missing:
            ensure_classifier(cfg)
        if not path.is_file():
            raise UserError(
                f"no classifier checkpoint at {path}: run stage=train first or set model.checkpoint"
            )
    model = instantiate(cfg.model.build)
    state = io.load_checkpoint(path)
    state = state.get("model", state)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{path} does not fit model={cfg.model.name}: {str(e).splitlines()[0]}") from None
    return model.to(device).eval()


# ------------------------------------------------------------------------------------------ manifests


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in (
        "wsl",
        "torch",
        "torchvision",
        "numpy",
        "hydra-core",
        "opencv-python-headless",
        "pycocotools",
    ):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    return out


def _git_commit() -> str | None:
    try:
        res = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


def write_manifest(
    folder: Path,
    cfg: DictConfig,
    started: float,
    done: int = 0,
    skipped: int = 0,
    failed: int = 0,
    **extra: Any,
) -> None:
    """``manifest.json`` of a leaf folder: config, versions, commit, wall time, item counts. Rank 0 only."""
    if not dist.is_main():
        return
    manifest = {
        "stage": cfg.stage.name,
        "config": OmegaConf.to_container(cfg, resolve=True),
        "versions": _versions(),
        "git_commit": _git_commit(),
        "world_size": dist.world_size(),
        "wall_time_s": round(time.time() - started, 3),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "counts": {"done": done, "skipped": skipped, "failed": failed},
        **extra,
    }
    io.write_json(Path(folder) / "manifest.json", manifest)


def write_metrics(folder: Path, metrics: dict[str, Any]) -> None:
    if dist.is_main():
        io.write_json(Path(folder) / "metrics.json", metrics)
