"""Models: classifiers (wsl.models.classifier; any timm / torchvision classifier: wsl.models.zoo) and
segmentation networks (wsl.models.deeplab)."""

from wsl.models.classifier import ARCHS, build_classifier
from wsl.models.weights import fit_state_dict, load_backbone_weights

__all__ = ["ARCHS", "build_classifier", "fit_state_dict", "load_backbone_weights"]
