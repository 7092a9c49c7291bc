"""Models: classifiers (wsl.models.classifier) and segmentation networks (wsl.models.deeplab)."""

from wsl.models.classifier import ARCHS, build_classifier
from wsl.models.weights import fit_state_dict

__all__ = ["ARCHS", "build_classifier", "fit_state_dict"]
