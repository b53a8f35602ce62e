"""Prototype-guided masks (paper section 4.2, eqs. 12-15): nearest-neighbour distances of a test image's features to
a bank of its class's normal features, thresholded into a free-form mask.

psi(x) = [phi2(x); Upsample(phi3(x))]: the paper's "layers 2 and 3" of its EfficientNet are here the frozen
backbone's stride-8 and stride-16 stages (as PatchCore's layer2/layer3), the stride-16 map bilinearly upsampled to
stride 8. The bank P_c holds psi of every shot of class c at every rotation in `angles` (the paper's Aug).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from nipad.models.anomalysd.threshold import otsu_threshold
from nipad.models.backbone import Backbone

PSI_STAGES = (2, 3)  # indices into the backbone's strides (2, 4, 8, 16): strides 8 and 16


def psi(backbone: Backbone, images: Tensor) -> Tensor:
    """(B, 3, S, S) images in [0, 1] -> (B, C2 + C3, S/8, S/8) features."""
    maps = backbone(images)
    low, high = (maps[i] for i in PSI_STAGES)
    return torch.cat([low, F.interpolate(high, size=low.shape[-2:], mode="bilinear", align_corners=False)], dim=1)


def rotations(images: Tensor, angles: Sequence[int]) -> Tensor:
    """The images rotated by each multiple of 90 degrees in `angles` (square images stay exact), stacked."""
    return torch.cat([torch.rot90(images, k=(a // 90) % 4, dims=(2, 3)) for a in angles])


def build_bank(backbone: Backbone, shots: Tensor, angles: Sequence[int], batch_size: int = 16) -> Tensor:
    """P_c as an (N, C) matrix: every position of psi of every rotated shot ((n, 3, S, S) in [0, 1])."""
    images = rotations(shots, angles)
    feats = [psi(backbone, images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
    return torch.cat(feats).permute(0, 2, 3, 1).reshape(-1, feats[0].shape[1])


def error_map(features: Tensor, bank: Tensor, chunk: int = 8192) -> Tensor:
    """E (eq. 14): min over the bank of the squared L2 distance, per position of (C, h, w) features -> (h, w)."""
    c, h, w = features.shape
    query = features.reshape(c, -1).T.float()
    best = torch.full((query.shape[0],), float("inf"), device=query.device)
    for start in range(0, len(bank), chunk):
        part = bank[start:start + chunk].to(query)
        best = torch.minimum(best, torch.cdist(query, part).pow(2).min(dim=1).values)
    return best.reshape(h, w)


def prototype_mask(error: Tensor, size: int) -> Tensor:
    """M^(p) (eq. 15): 1 where E > r, r the Otsu threshold of E, nearest-upsampled to (1, 1, size, size)."""
    binary = (error > otsu_threshold(error)).float()[None, None]
    return F.interpolate(binary, size=(size, size), mode="nearest")
