"""The perceptual distance D of AnomalySD's score maps (eqs. 16-17) and of its decoder loss (eqs. 9-10).

"lpips" (the paper's, the default): LPIPS v0.1 with AlexNet, features phi^(l) of five conv stages weighted per
channel by LPIPS's learned heads w^(l) (nipad.models.lpips; weights converted by scripts/setup.sh). "lite0" (a
stand-in, the default only where those weights are missing): the four stages (strides 2, 4, 8, 16) of the frozen
EfficientNet-Lite0 backbone, unit-normalised over channels at each position, with uniform channel weights (LPIPS's
"baseline" form). Both expose `stages(images) -> [maps]` and `weigh(l, (f_x - f_y)^2) -> (B, 1, h, w)`.
"""

from __future__ import annotations

from typing import Protocol, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nipad.errors import ConfigError
from nipad.models.anomalysd.config import PERCEPTUAL as CHOICES
from nipad.models.backbone import Backbone, create_backbone
from nipad.models.lpips import weights as lpips_weights
from nipad.models.lpips.lpips_net import LPIPS


class Perceptual(Protocol):
    def stages(self, images: Tensor) -> list[Tensor]: ...

    def weigh(self, layer: int, squared_difference: Tensor) -> Tensor: ...


class BackboneStages(nn.Module):
    """The "lite0" stand-in: a frozen backbone's stages, unit-normalised, channels summed with equal weights."""

    def __init__(self, backbone: Backbone) -> None:
        super().__init__()
        self.backbone = backbone

    def stages(self, images: Tensor) -> list[Tensor]:
        """Gradients flow to the images (the backbone's own forward runs without autograd); its weights stay frozen."""
        b = self.backbone
        return [F.normalize(m.float(), dim=1, eps=1e-10) for m in b.features((images - b.mean_tensor) / b.std_tensor)]

    def weigh(self, layer: int, squared_difference: Tensor) -> Tensor:
        return squared_difference.sum(dim=1, keepdim=True)


PerceptualModule = LPIPS | BackboneStages  # the measures create_perceptual builds: modules with Perceptual's methods


def choose(requested: str | None) -> tuple[str, str | None]:
    """The measure to use and a note to print: `requested`, else lpips where its weights are, else lite0."""
    if requested is not None:
        if requested not in CHOICES:
            raise ConfigError(f"--perceptual {requested!r}: choose one of {', '.join(CHOICES)}")
        return requested, None
    if lpips_weights.available():
        return "lpips", None
    return "lite0", (f"the LPIPS AlexNet weights ({lpips_weights.weights_path()}) are missing, so the perceptual "
                     f"distance is the EfficientNet-Lite0 stand-in (--perceptual lite0); for the paper's LPIPS "
                     f"{lpips_weights.FIX}")


def create_perceptual(name: str) -> PerceptualModule:
    """The frozen measure `name` ("lpips": CheckpointError naming the fix when its weights are missing)."""
    if name == "lpips":
        return LPIPS.pretrained()
    if name == "lite0":
        return BackboneStages(create_backbone("lite0"))
    raise ConfigError(f"unknown perceptual distance {name!r}: choose one of {', '.join(CHOICES)}")


def distance_map(perceptual: Perceptual, reference: list[Tensor], other: list[Tensor], size: int) -> Tensor:
    """D(x, x^) (eq. 17): per stage the weighted squared distance of the normalised features (eq. 16), bilinearly
    upsampled to size x size and summed over stages; `reference` (1 or B images) is broadcast against `other`
    (B images). -> (B, 1, size, size)."""
    total: Tensor | None = None
    for layer, (fx, fy) in enumerate(zip(reference, other, strict=True)):
        d = perceptual.weigh(layer, (fx - fy).pow(2))
        d = F.interpolate(d, size=(size, size), mode="bilinear", align_corners=False)
        total = d if total is None else total + d
    return cast(Tensor, total)  # every measure has stages


def perceptual_loss(perceptual: Perceptual, images: Tensor, target: Tensor) -> Tensor:
    """Eq. 10 (the LPIPS loss): per stage the mean over positions of the weighted squared distance, summed."""
    return cast(Tensor, sum(perceptual.weigh(layer, (fx - fy).pow(2)).mean() for layer, (fx, fy) in enumerate(zip(
        perceptual.stages(images), perceptual.stages(target), strict=True))))  # every measure has stages


def perceptual_distance(perceptual: Perceptual, images: Tensor, other: Tensor) -> Tensor:
    """D between two batches of images in [0, 1], at the images' size (no autograd)."""
    with torch.no_grad():
        return distance_map(perceptual, perceptual.stages(images), perceptual.stages(other), images.shape[-1])
