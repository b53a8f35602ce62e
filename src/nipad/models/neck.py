"""MFCN neck (multi-scale feature concatenation, OneNIP spec section 1) and the image -> neck-feature extractor."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nipad.models.backbone import Backbone


class MFCN(nn.Module):
    """Resize every map to the size of the last (stride-16) map and concatenate them on channels; no parameters.

    Bilinear with align_corners=True and no antialiasing, as the authors' `nn.UpsamplingBilinear2d(in_stride / 16)`.
    """

    def forward(self, features: list[Tensor]) -> Tensor:
        """B x C_i x H_i x W_i maps -> B x sum(C_i) x H x W at the last map's size."""
        size = features[-1].shape[-2:]
        resized = [
            f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="bilinear", align_corners=True)
            for f in features
        ]
        return torch.cat(resized, dim=1)


class FeatureExtractor(nn.Module):
    """Images (uint8 in [0, 255] or float in [0, 1], B x 3 x H x W) -> neck features B x out_channels x h x w."""

    def __init__(self, backbone: Backbone, neck: MFCN):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.out_channels = sum(backbone.channels)
        self.out_stride = backbone.strides[-1]

    def feature_size(self, image_size: int) -> int:
        """Side of the neck map for a square input: every stride-2 conv pads to ceil(n / 2), so ceil(n / 16)."""
        return math.ceil(image_size / self.out_stride)

    def forward(self, images: Tensor) -> Tensor:
        """Scale uint8 images to [0, 1], run the frozen backbone and the neck."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        return self.neck(self.backbone(images))
