"""The segmentation network of stage=sec and stage=labels: built from ``segmodel``, kept in ``sec/<cam>/``."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from wsl import io
from wsl.stages import UserError, common

log = logging.getLogger(__name__)


def sec_dir(cfg: DictConfig) -> Path:
    """``<run>/sec/<cam>/``: checkpoints, history and plots of the SEC network trained on that CAM's seeds."""
    return common.run_dir(cfg) / "sec" / cfg.cam.name


def build_segmodel(cfg: DictConfig, from_checkpoint: bool = False) -> torch.nn.Module:
    """``segmodel.build`` with ``num_classes = dataset.num_classes + 1`` (class 0 is the background).

    With ``from_checkpoint`` ImageNet weights are not fetched (the checkpoint replaces them anyway).
    """
    seg = cfg.segmodel
    if seg.get("pretrained") and "pretrained" not in seg.build:
        raise UserError(f"segmodel={seg.name} has no pretrained weights; set segmodel.pretrained=false")
    kwargs: dict[str, Any] = {"num_classes": int(cfg.dataset.num_classes) + 1}
    if from_checkpoint and "pretrained" in seg.build:
        kwargs["pretrained"] = False
    try:
        return instantiate(seg.build, **kwargs)
    except InstantiationException as e:  # e.g. ImageNet weights offline: one line, not a traceback
        raise UserError(f"segmodel={seg.name}: {str(e).strip().splitlines()[-1]}") from None


@torch.no_grad()
def grid_size(model: torch.nn.Module, input_size: int, device: torch.device) -> tuple[int, int]:
    """Output grid ``(h, w)`` of ``model`` for a square ``input_size`` input (41 x 41 for LargeFOV at 321)."""
    was_training = model.training
    model.eval()
    h, w = model(torch.zeros(1, 3, input_size, input_size, device=device)).shape[-2:]
    model.train(was_training)
    return int(h), int(w)


def meta(cfg: DictConfig, grid: tuple[int, int]) -> dict[str, Any]:
    """What a checkpoint records about its network, checked when it is loaded."""
    return {
        "segmodel": cfg.segmodel.name,
        "num_classes": int(cfg.dataset.num_classes) + 1,
        "input_size": int(cfg.segmodel.input_size),
        "grid": list(grid),
        "cam": cfg.cam.name,
    }


def load_segmodel(cfg: DictConfig, device: torch.device, path: Path | None = None) -> torch.nn.Module:
    """The trained SEC network (``sec/<cam>/final.pt`` unless ``path``), in eval mode on ``device``."""
    path = Path(path) if path else sec_dir(cfg) / "final.pt"
    if not path.is_file():
        raise UserError(
            f"no SEC network at {path}: run `python -m wsl.run stage=sec` first (or set stage.checkpoint)"
        )
    state = io.load_checkpoint(path)
    if state.get("segmodel") not in (None, cfg.segmodel.name):
        raise UserError(f"{path} holds segmodel={state['segmodel']}, not segmodel={cfg.segmodel.name}")
    model = build_segmodel(cfg, from_checkpoint=True)
    try:
        model.load_state_dict(state.get("model", state))
    except RuntimeError as e:
        raise UserError(
            f"{path} does not fit segmodel={cfg.segmodel.name}: {str(e).splitlines()[0]}"
        ) from None
    return model.to(device).eval()
