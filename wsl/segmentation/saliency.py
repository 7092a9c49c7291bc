"""SEC's background cue: a gradient saliency map of the classifier (Kolesnikov & Lampert, ECCV 2016).

SEC takes the gradient of the summed class scores at VGG-16's conv4_1, the maximum of its absolute value
over channels and a 3x3 median filter (after Simonyan et al., "Deep inside convolutional networks", 2014),
then keeps the 10 % least salient pixels as background. Here the layer is any module of the classifier,
or the input image itself (``layer=None``). The last feature map of a classifier with global average
pooling and one linear layer is NOT usable: its gradient is the same at every position, so the saliency
would carry no information (refused with a clear error).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from wsl.data.transforms import to_tensor
from wsl.errors import UserError
from wsl.segmentation.seeds import gradient_saliency


class _WithInput(nn.Module):
    """``model`` behind an identity layer, so that the saliency can be taken at the input image."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.input, self.model = nn.Identity(), model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.input(x))


class SECSaliency:
    """``SECSaliency(model, layer_name)(image) -> (H, W)`` saliency of a uint8 image, at image size.

    ``layer_name=None`` takes the gradient at the input image (Simonyan et al. 2014, which SEC builds on).
    """

    def __init__(
        self,
        model: nn.Module,
        layer_name: str | None,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
    ) -> None:
        self.layer_name, self.mean, self.std, self.device = layer_name, list(mean), list(std), device
        if layer_name is None:
            self.model = _WithInput(model).eval()
            self.layer = self.model.input
        else:
            layers = dict(model.named_modules())
            if layer_name not in layers:
                raise UserError(f"stage.saliency_layer={layer_name}: no such module in the classifier")
            self.model, self.layer = model, layers[layer_name]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Raises UserError when the map is spatially constant (the 10 % rule needs contrast)."""
        x = to_tensor(image, self.mean, self.std)[None].to(self.device)
        sal = gradient_saliency(self.model, self.layer, x)[None]  # (1, 1, h, w)
        if float(sal.max() - sal.min()) <= 1e-12 * max(1.0, float(sal.abs().max())):
            raise UserError(
                f"stage.saliency_layer={self.layer_name}: the saliency is spatially constant; "
                "use an earlier layer (SEC: conv4_1) or null (the input image)"
            )
        return (
            F.interpolate(sal, size=image.shape[:2], mode="bilinear", align_corners=False)[0, 0].cpu().numpy()
        )
