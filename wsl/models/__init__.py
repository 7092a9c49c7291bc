"""Models: classifiers (wsl.models.classifier) and segmentation networks (wsl.models.deeplab)."""

from wsl.models.classifier import ARCHS, build_classifier

__all__ = ["ARCHS", "build_classifier"]
