"""Shared fixtures: a small toy dataset generated once per session, and Hydra composition helpers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from wsl.config_schema import register_schemas
from wsl.run import CONF_DIR, register_resolvers

torch.set_num_threads(min(2, os.cpu_count() or 1))
register_resolvers()
register_schemas()

SMALL_TOY = {"n_train": 48, "n_val": 24}


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """A data root holding a small toy dataset (generated once for the whole session)."""
    from wsl.data.toy import ensure_toy

    root = tmp_path_factory.mktemp("data")
    ensure_toy(root / "toy", seed=0, **SMALL_TOY)
    return root


@pytest.fixture(scope="session")
def trained_root(tmp_path_factory, data_root: Path) -> Path:
    """An output root whose run ``toy-small_cnn`` has a 1-epoch classifier (trained once per session;
    quality does not matter to the tests that use it). Copy it with :func:`trained` before writing."""
    from wsl.stages import train

    out = tmp_path_factory.mktemp("trained")
    train.run(compose_cfg(["stage=train", "stage.epochs=1", "num_workers=0"], data_root, out))
    return out


@pytest.fixture
def trained(trained_root: Path, tmp_path: Path) -> Path:
    """A private output root (in ``tmp_path``) holding a copy of the session's trained run."""
    out = tmp_path / "out"
    shutil.copytree(trained_root, out)
    return out


@pytest.fixture
def compose(data_root: Path, tmp_path: Path):
    """``compose(overrides) -> cfg``: the real configuration, data in ``data_root``, outputs in tmp_path."""
    return lambda overrides, output_root=tmp_path: compose_cfg(overrides, data_root, output_root)


@pytest.fixture(scope="session")
def compose_at(data_root: Path):
    """``compose_at(overrides, output_root, data=data_root) -> cfg`` for module- or session-scoped runs."""
    return lambda overrides, output_root, data=None: compose_cfg(overrides, data or data_root, output_root)


def compose_cfg(overrides: list[str], data_root: Path, output_root: Path) -> DictConfig:
    """Compose the real configuration with the compose API, pointed at test folders."""
    register_schemas()  # conf/ links the schemas of wsl/config_schema.py: they must be in Hydra's ConfigStore
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(
            config_name="config",
            overrides=[
                f"paths.data_root={data_root}",
                f"paths.output_root={output_root}",
                *overrides,
                *toy_size_overrides(overrides),
            ],
            return_hydra_config=False,
        )


def toy_size_overrides(overrides: list[str]) -> list[str]:
    """Make the generated toy dataset the small one of :func:`data_root` (only for the toy datasets)."""
    dataset = next((o.split("=", 1)[1] for o in overrides if o.startswith("dataset=")), "toy")
    if dataset not in ("toy", "toy_coco"):
        return []
    return [f"++dataset.prepare.{k}={v}" for k, v in SMALL_TOY.items()]
