"""Necks that turn the backbone's feature pyramid into one token map at stride 16, and the image -> neck extractor.

- `mfcn`: the authors' MFCN (github.com/gaobb/OneNIP): every map resized bilinearly to the stride-16 map's size and
  concatenated. At stride 2 that keeps one pixel in 8 of each row and column, unfiltered.
- `pooled`: PatchCore's locally aware features brought to the same grid: each map averaged over its 3x3
  neighbourhood, then area-pooled to the stride-16 size, so every token summarises its whole 16x16 cell.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nipad.errors import ConfigError
from nipad.models.backbone import Backbone
from nipad.models.names import NECKS


class MFCN(nn.Module):
    """Resize every map to the size of the last (stride-16) map and concatenate them on channels; no parameters.

    Bilinear with align_corners=True and no antialiasing, as the authors' `nn.UpsamplingBilinear2d(in_stride / 16)`.
    """

    name = "mfcn"

    def forward(self, features: list[Tensor]) -> Tensor:
        """B x C_i x H_i x W_i maps -> B x sum(C_i) x H x W at the last map's size."""
        size = features[-1].shape[-2:]
        resized = [
            f if f.shape[-2:] == size else F.interpolate(f, size=size, mode="bilinear", align_corners=True)
            for f in features
        ]
        return torch.cat(resized, dim=1)


class PooledNeck(nn.Module):
    """Average every map over its `local` x `local` neighbourhood (stride 1, PatchCore's local aggregation), then
    area-pool it to the last map's size, and concatenate; no parameters."""

    name = "pooled"

    def __init__(self, local: int = 3) -> None:
        super().__init__()
        self.local = local

    def forward(self, features: list[Tensor]) -> Tensor:
        h, w = features[-1].shape[-2:]
        size = (int(h), int(w))
        return torch.cat([_area_pool(
            F.avg_pool2d(f, self.local, stride=1, padding=self.local // 2, count_include_pad=False), size
        ) for f in features], dim=1)


def _area_pool(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Average over the cells of a `size` grid. A plain average pool where the sides divide (the same values, and
    ONNX exports it; the export resizes every input to the model size first), adaptive pooling elsewhere."""
    h, w = (int(n) for n in x.shape[-2:])
    if h % size[0] == 0 and w % size[1] == 0:
        kernel = (h // size[0], w // size[1])
        return x if kernel == (1, 1) else F.avg_pool2d(x, kernel)
    return F.adaptive_avg_pool2d(x, size)


def create_neck(name: str) -> nn.Module:
    """The neck called `name` (one of NECKS)."""
    if name == "mfcn":
        return MFCN()
    if name == "pooled":
        return PooledNeck()
    raise ConfigError(f"unknown neck {name!r}; choose one of {', '.join(NECKS)}")


class FeatureExtractor(nn.Module):
    """Images (uint8 in [0, 255] or float in [0, 1], B x 3 x H x W) -> neck features B x out_channels x h x w."""

    def __init__(self, backbone: Backbone, neck: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.out_channels = sum(backbone.channels)
        self.out_stride = backbone.strides[-1]

    @property
    def fingerprint(self) -> str:
        """Changes whenever the features could: the backbone's weights and the neck."""
        return f"{self.backbone.fingerprint}-{getattr(self.neck, 'name', type(self.neck).__name__)}"

    def feature_size(self, image_size: int) -> int:
        """Side of the neck map for a square input: every stride-2 conv pads to ceil(n / 2), so ceil(n / 16)."""
        return math.ceil(image_size / self.out_stride)

    def forward(self, images: Tensor) -> Tensor:
        """Scale uint8 images to [0, 1], run the frozen backbone and the neck."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        return self.neck(self.backbone(images))
