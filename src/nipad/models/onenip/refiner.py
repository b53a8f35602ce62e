"""OneNIP's supervised refiner: feature error (B, C, h, w) -> anomaly logits at the image size.

Two blocks of 3x3 conv (no bias) + BatchNorm + ReLU + 2x2 transposed conv (stride 2), then a 1x1 conv to one
channel (stride 4 of the feature map), upsampled bilinearly (align_corners=True) to the input size
(as the authors' released code, github.com/gaobb/OneNIP).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def _up_block(in_ch: int, ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(ch),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(ch, ch, 2, stride=2),
    )


class Refiner(nn.Module):
    def __init__(self, in_channels: int, channels: int = 128) -> None:
        super().__init__()
        self.upconv1 = _up_block(in_channels, channels)
        self.upconv2 = _up_block(channels, channels)
        self.predictor = nn.Conv2d(channels, 1, 1)

    def forward(self, error: Tensor, out_size: tuple[int, int]) -> Tensor:
        logits = self.predictor(self.upconv2(self.upconv1(error)))
        return F.interpolate(logits, size=out_size, mode="bilinear", align_corners=True)
