"""SEC's background cue for stage=seeds: a gradient saliency map of the run's classifier.

SEC (Kolesnikov & Lampert, ECCV 2016) takes the gradient of the summed class scores at VGG-16's conv4_1,
the maximum of its absolute value over channels and a 3x3 median filter (after Simonyan et al., "Deep
inside convolutional networks", 2014), then keeps the 10 % least salient pixels as background. Here the
layer is ``stage.saliency_layer``, or the input image itself when null. The last feature map of a
classifier with global average pooling and one linear layer is NOT usable: its gradient is the same at
every position, so the saliency would carry no information (refused with a clear error).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig

from wsl.data.transforms import to_tensor
from wsl.segmentation import gradient_saliency
from wsl.stages import UserError, common


class _WithInput(torch.nn.Module):
    """``model`` behind an identity layer, so that the saliency can be taken at the input image."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.input, self.model = torch.nn.Identity(), model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.input(x))


def saliency_layer(cfg: DictConfig, device: torch.device) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(model, layer) of SEC's gradient saliency: ``stage.saliency_layer`` of the run's classifier, or the
    input image when null (Simonyan et al. 2014's image-specific saliency, which SEC builds on)."""
    model = common.load_classifier(cfg, device)
    name = cfg.stage.saliency_layer
    if name is None:
        wrapped = _WithInput(model).eval()
        return wrapped, wrapped.input
    layers = dict(model.named_modules())
    if name not in layers:
        raise UserError(f"stage.saliency_layer={name}: no such module in model={cfg.model.name}")
    return model, layers[name]


def saliency_map(
    model: torch.nn.Module, layer: torch.nn.Module, image: np.ndarray, cfg: DictConfig, device: torch.device
) -> np.ndarray:
    """SEC's gradient saliency of ``image`` (uint8 (H, W, 3)), upsampled bilinearly to (H, W).

    Raises UserError when the map is spatially constant (the last feature map of a classifier with global
    average pooling and one linear layer has the same gradient everywhere): the 10 % rule needs contrast.
    """
    x = to_tensor(image, list(cfg.dataset.mean), list(cfg.dataset.std))[None].to(device)
    sal = gradient_saliency(model, layer, x)[None]  # (1, 1, h, w)
    if float(sal.max() - sal.min()) <= 1e-12 * max(1.0, float(sal.abs().max())):
        raise UserError(
            f"stage.saliency_layer={cfg.stage.saliency_layer}: the saliency is spatially constant; "
            "use an earlier layer (SEC: conv4_1) or null (the input image)"
        )
    return F.interpolate(sal, size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0].cpu().numpy()
