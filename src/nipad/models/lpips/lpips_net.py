"""LPIPS v0.1 with the AlexNet trunk, as the `lpips` package computes it.

Images in [0, 1] go to [-1, 1], then through LPIPS's scaling layer ((x - shift) / scale), then AlexNet's five conv
stages (the ReLU outputs of torchvision's `alexnet().features`: strides 4, 8, 16, 16, 16); each stage's features
are unit-normalised over channels at every position (x / (||x|| + 1e-10)), and a stage's distance map is its
learned linear head (a 1x1 conv, no bias) over the squared feature difference. Frozen: gradients reach the images.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
from torch import Tensor, nn

from nipad.models.lpips.weights import load_weights

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
CHANNELS = (64, 192, 384, 256, 256)
TAPS = (1, 4, 7, 9, 11)  # the ReLUs of alexnet().features whose outputs LPIPS compares


def alexnet_features() -> nn.Sequential:
    """torchvision's alexnet().features, same layers and indices (built here to skip its 58 M-weight classifier)."""
    return nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
    )


def unit_normalise(x: Tensor, eps: float = 1e-10) -> Tensor:
    """LPIPS's normalize_tensor: x / (||x||_2 over channels + eps)."""
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


class LPIPS(nn.Module):
    """`stages(images)` -> the five normalised stage maps; `weigh(l, squared_difference)` -> (B, 1, h, w) map of
    stage l; `forward(a, b)` -> the LPIPS distance (B,) (the `lpips` package's value, spatially averaged)."""

    shift: Tensor  # buffers (register_buffer in __init__)
    scale: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.features = alexnet_features()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)
        self.requires_grad_(False).eval()

    @classmethod
    def pretrained(cls, path: str | Path | None = None) -> LPIPS:
        """With the converted weights (CheckpointError naming the fix when they are missing)."""
        model = cls()
        model.load_state_dict(load_weights(path))
        return model

    def train(self, mode: bool = True) -> LPIPS:
        return super().train(False)  # frozen: always in eval mode

    def stages(self, images: Tensor) -> list[Tensor]:
        """(B, 3, H, W) images in [0, 1] -> five unit-normalised (B, C_l, h_l, w_l) maps."""
        x = (images * 2 - 1 - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features[:TAPS[-1] + 1]):
            x = layer(x)
            if i in TAPS:
                out.append(unit_normalise(x))
        return out

    def weigh(self, layer: int, squared_difference: Tensor) -> Tensor:
        """Stage `layer`'s linear head over (f_x - f_y)^2: (B, C, h, w) -> (B, 1, h, w)."""
        return self.lins[layer](squared_difference)

    def forward(self, images: Tensor, other: Tensor) -> Tensor:
        """LPIPS distance of two batches of images in [0, 1]: the sum over stages of the spatial means, (B,)."""
        stages = enumerate(zip(self.stages(images), self.stages(other), strict=True))
        return cast(Tensor, sum(self.weigh(i, (fx - fy).pow(2)).mean(dim=(1, 2, 3)) for i, (fx, fy) in stages))
