"""One small file per CAM method; ``REGISTRY`` maps each name of ``METHODS`` to its class.

``build_method(name, **options)`` makes a configured method: each option goes to the methods that take
it (``METHOD_OPTIONS`` lists them; the others ignore it), and ``eigen_smooth=True`` wraps a method whose
map is a sum over channels in :class:`~wsl.cam.methods._common.EigenSmooth`. ``COST`` gives each method's
cost class (what a call costs beyond the one forward pass every method makes).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from wsl.cam.base import CAMMethod
from wsl.cam.methods._common import EigenSmooth
from wsl.cam.methods.ablationcam import AblationCAM
from wsl.cam.methods.cam import CAM
from wsl.cam.methods.eigencam import EigenCAM
from wsl.cam.methods.eigengradcam import EigenGradCAM
from wsl.cam.methods.finercam import FinerCAM
from wsl.cam.methods.fullgrad import FullGrad
from wsl.cam.methods.gradcam import GradCAM
from wsl.cam.methods.gradcam_elementwise import GradCAMElementWise
from wsl.cam.methods.gradcampp import GradCAMPlusPlus
from wsl.cam.methods.guided import GuidedBackprop, GuidedGradCAM
from wsl.cam.methods.hirescam import HiResCAM
from wsl.cam.methods.iscam import ISCAM
from wsl.cam.methods.kpcacam import KPCACAM
from wsl.cam.methods.layercam import LayerCAM
from wsl.cam.methods.randomcam import RandomCAM
from wsl.cam.methods.scorecam import ScoreCAM
from wsl.cam.methods.shapleycam import ShapleyCAM
from wsl.cam.methods.smoothgradcampp import SmoothGradCAMPlusPlus
from wsl.cam.methods.sscam import SSCAM
from wsl.cam.methods.xgradcam import XGradCAM

REGISTRY: dict[str, type[CAMMethod]] = {
    cls.name: cls
    for cls in (
        CAM,
        GradCAM,
        HiResCAM,
        GradCAMPlusPlus,
        XGradCAM,
        LayerCAM,
        ScoreCAM,
        AblationCAM,
        EigenCAM,
        GuidedBackprop,
        GuidedGradCAM,
        EigenGradCAM,
        GradCAMElementWise,
        FullGrad,
        KPCACAM,
        FinerCAM,
        ShapleyCAM,
        RandomCAM,
        SmoothGradCAMPlusPlus,
        SSCAM,
        ISCAM,
    )
}
METHODS: tuple[str, ...] = tuple(REGISTRY)

# What one call costs on top of the capture forward pass: "gradient" (one batched backward of the layers
# after the target), "forward" (no backward), "2 forwards" (a second, grad-enabled pass), "N gradients"
# (one per noise sample), "C forwards" (one masked pass per channel, batched), "full backward" (to the
# pixels), "eigen" (an SVD / eigenproblem per map).
COST: dict[str, str] = {
    "cam": "forward",
    "gradcam": "gradient",
    "hirescam": "gradient",
    "gradcampp": "gradient",
    "xgradcam": "gradient",
    "layercam": "gradient",
    "scorecam": "C forwards",
    "ablationcam": "C forwards (layers after the target)",
    "eigencam": "forward + SVD per image",
    "guided_backprop": "full backward per class",
    "guided_gradcam": "gradient + full backward per class",
    "eigengradcam": "gradient + SVD per map",
    "gradcam_elementwise": "gradient",
    "fullgrad": "full backward per class",
    "kpcacam": "forward + (h*w)^2 eigenproblem per image",
    "finercam": "2 forwards + gradient",
    "shapleycam": "2 forwards + double backward",
    "randomcam": "forward",
    "smoothgradcampp": "samples x (forward + gradient)",
    "sscam": "samples x C forwards",
    "iscam": "samples x C forwards",
}

# The method options of conf/cam/_base.yaml (cfg.cam keys passed to build_method).
METHOD_OPTIONS: tuple[str, ...] = (
    "eigen_smooth",
    "score",
    "samples",
    "noise_std",
    "seed",
    "kernel",
    "gamma",
    "finer_alpha",
    "finer_compare",
    "finer_base",
)


def _accepted(cls: type[CAMMethod]) -> set[str]:
    return {n for n in inspect.signature(cls.__init__).parameters if n != "self"}


def build_method(name: str, fc_layer: str | nn.Module | None = None, **options: Any) -> CAMMethod:
    """The method ``name`` with ``options`` (keys of ``METHOD_OPTIONS``); ValueError for an unknown name or
    option, or for ``eigen_smooth=True`` on a method whose map is not a sum over channels."""
    if name not in REGISTRY:
        raise ValueError(f"unknown CAM method {name!r}; choose one of {', '.join(METHODS)}")
    unknown = sorted(set(options) - set(METHOD_OPTIONS))
    if unknown:
        raise ValueError(f"unknown CAM method option(s) {unknown}; known: {', '.join(METHOD_OPTIONS)}")
    if fc_layer is not None and name != "cam":
        raise ValueError("fc_layer applies to method='cam' only")
    cls = REGISTRY[name]
    eigen = bool(options.pop("eigen_smooth", False))
    kwargs = {k: v for k, v in options.items() if k in _accepted(cls) and v is not None}
    method = CAM(fc_layer) if name == "cam" else cls(**kwargs)
    return EigenSmooth(method) if eigen else method


__all__ = ["COST", "METHODS", "METHOD_OPTIONS", "REGISTRY", "build_method"]
