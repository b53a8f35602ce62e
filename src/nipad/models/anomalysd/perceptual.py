"""The perceptual distance of AnomalySD's score maps (eqs. 16-17) and of its decoder loss (eq. 10).

Deviation from the paper: LPIPS's AlexNet weights and learned channel weights w^(l) cannot be had offline, so the
features phi^(l) are the four stages (strides 2, 4, 8, 16) of nipad's frozen EfficientNet backbone, unit-normalised
over channels at each position as in LPIPS, with uniform channel weights (LPIPS's "baseline" form).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nipad.models.backbone import Backbone


def stage_features(backbone: Backbone, images: Tensor) -> list[Tensor]:
    """Channel-normalised stage features of (B, 3, H, W) images in [0, 1]; gradients flow to the images (the
    backbone's own forward runs without autograd), its weights stay frozen."""
    maps = backbone.features((images - backbone.mean_tensor) / backbone.std_tensor)
    return [F.normalize(m.float(), dim=1, eps=1e-10) for m in maps]


def distance_map(reference: list[Tensor], other: list[Tensor], size: int) -> Tensor:
    """D(x, x^) (eq. 17): per stage the squared distance of the normalised features, upsampled to size x size and
    summed over stages; `reference` (1 or B images) is broadcast against `other` (B images). -> (B, 1, size, size)."""
    total = None
    for fx, fy in zip(reference, other, strict=True):
        d = (fx - fy).pow(2).sum(dim=1, keepdim=True)
        d = F.interpolate(d, size=(size, size), mode="bilinear", align_corners=False)
        total = d if total is None else total + d
    return total


def perceptual_loss(backbone: Backbone, images: Tensor, target: Tensor) -> Tensor:
    """Eq. 10: per stage the mean over positions of the squared feature distance, summed over stages."""
    return sum((fx - fy).pow(2).sum(dim=1).mean() for fx, fy in zip(
        stage_features(backbone, images), stage_features(backbone, target), strict=True))


def perceptual_distance(backbone: Backbone, images: Tensor, other: Tensor) -> Tensor:
    """D between two batches of images in [0, 1], at the images' size (no autograd)."""
    with torch.no_grad():
        return distance_map(stage_features(backbone, images), stage_features(backbone, other), images.shape[-1])
