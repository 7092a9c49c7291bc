"""Checks a composed configuration against the YAML files it came from.

Hydra already rejects unknown keys (struct mode) and unknown group options. This adds what it cannot
know without schemas: a value whose type differs from the type of its default (``stage.batch_size=abc``)
and a value outside a fixed set of choices. Each problem is one line naming the key and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

# Keys whose value must be one of a fixed set (key path -> allowed values).
CHOICES: dict[str, tuple[Any, ...]] = {
    "stage.task": ("all", "localization", "segmentation"),
    "stage.box_mode": ("largest", "all"),
    "stage.threshold_method": ("relative", "otsu", "percentile"),
    "stage.overlap": ("smaller", "argmax"),
    "stage.background": ("threshold", "saliency", "irn"),
    "stage.source": ("cams", "seeds", "labels"),
    "stage.loss": ("bce", "softmargin"),
    "cam.method": (
        "cam",
        "gradcam",
        "hirescam",
        "gradcampp",
        "xgradcam",
        "layercam",
        "scorecam",
        "ablationcam",
        "eigencam",
        "guided_backprop",
        "guided_gradcam",
    ),
}

GROUPS = ("paths", "dataset", "model", "segmodel", "cam", "stage")


class ConfigError(ValueError):
    """A configuration a user can fix; reported as one line."""


def _type_name(v: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(type(v), type(v).__name__)


def _compatible(default: Any, value: Any) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, int | float)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, str):
        return isinstance(value, str)
    return True


def _walk(default: Any, value: Any, key: str, errors: list[str]) -> None:
    if isinstance(default, DictConfig):
        if not isinstance(value, DictConfig):
            if value is not None:
                errors.append(f"{key}: expected a mapping, got {value!r}")
            return
        for k in default.keys():
            if k in value and not OmegaConf.is_missing(value, k) and not OmegaConf.is_missing(default, k):
                if OmegaConf.is_interpolation(default, k):
                    continue
                _walk(default._get_node(k), value._get_node(k), f"{key}.{k}", errors)
        return
    if isinstance(default, ListConfig):
        if value is not None and not isinstance(value, ListConfig):
            errors.append(f"{key}: expected a list, got {value!r}")
        return
    d = default._value() if hasattr(default, "_value") else default
    v = value._value() if hasattr(value, "_value") else value
    if isinstance(v, str) and OmegaConf.is_interpolation(value._get_parent(), key.rsplit(".", 1)[-1]):
        return
    if not _compatible(d, v):
        errors.append(f"{key}: expected {_type_name(d)} (default {d!r}), got {v!r}")


def check_config(cfg: DictConfig, conf_dir: Path, choices: dict[str, str] | None = None) -> None:
    """Raise :class:`ConfigError` (one line per problem) if ``cfg`` disagrees with its YAML defaults.

    ``choices`` maps group -> selected option; by default it is read from Hydra's runtime.
    """
    if choices is None:
        from hydra.core.hydra_config import HydraConfig

        choices = dict(HydraConfig.get().runtime.choices) if HydraConfig.initialized() else {}
    errors: list[str] = []
    for group in GROUPS:
        option = choices.get(group)
        path = conf_dir / group / f"{option}.yaml"
        if option is None or not path.is_file() or group not in cfg:
            continue
        _walk(OmegaConf.load(path), cfg[group], group, errors)
    root = OmegaConf.load(conf_dir / "config.yaml")
    for k in ("seed", "num_workers", "device"):
        if k in cfg and k in root:
            _walk(root._get_node(k), cfg._get_node(k), k, errors)
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and value not in allowed:
            errors.append(f"{key}={value}: not one of {', '.join(map(str, allowed))}")
    if errors:
        raise ConfigError("invalid configuration: " + "; ".join(errors))
