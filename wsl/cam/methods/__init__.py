"""One small file per CAM method; ``REGISTRY`` maps each name of ``METHODS`` to its class."""

from __future__ import annotations

from wsl.cam.base import CAMMethod
from wsl.cam.methods.ablationcam import AblationCAM
from wsl.cam.methods.cam import CAM
from wsl.cam.methods.eigencam import EigenCAM
from wsl.cam.methods.gradcam import GradCAM
from wsl.cam.methods.gradcampp import GradCAMPlusPlus
from wsl.cam.methods.guided import GuidedBackprop, GuidedGradCAM
from wsl.cam.methods.hirescam import HiResCAM
from wsl.cam.methods.layercam import LayerCAM
from wsl.cam.methods.scorecam import ScoreCAM
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
    )
}
METHODS: tuple[str, ...] = tuple(REGISTRY)

__all__ = ["METHODS", "REGISTRY"]
