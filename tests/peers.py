"""What the tests need to call the peer libraries on wsl's models (``from peers import OutOnly``)."""

from __future__ import annotations

import torch
from torch import nn


class OutOnly(nn.Module):
    """DeepLab's dict output reduced to its ``"out"`` tensor, as pytorch-grad-cam's tutorial does."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)["out"]
