"""PaDiM (Defard et al., ICPR 2021): one multivariate Gaussian per patch position over a random subset of the
concatenated multi-level features, scored by the Mahalanobis distance.

Features: the stride-4, 8 and 16 backbone maps (the paper's ResNet layer1-3), the coarser ones resized (nearest,
as the authors' code) to the stride-4 grid and concatenated (24 + 40 + 112 = 176 channels for lite0), of which
`dims` random channels (seeded, kept in the run) are used. Covariances are estimated in one streaming pass
(float64 sums of x and x x^T), regularised by `covariance_eps` * I (the paper's 0.01), and stored inverted, float32.
At 224 px: 56 x 56 positions x dims^2 = 125 MB per group for dims = 100.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from nipad.errors import ConfigError
from nipad.models.backbone import Backbone
from nipad.models.baselines.template import BaselineConfig, PatchBaseline

STRIDES = (4, 8, 16)


@dataclass(frozen=True)
class PadimConfig(BaselineConfig):
    model: ClassVar[str] = "padim"
    dims: int = 100
    covariance_eps: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.dims < 1 or self.covariance_eps <= 0:
            raise ConfigError(f"PaDiM needs dims >= 1 and covariance_eps > 0, got {self.dims}, {self.covariance_eps}")


def mahalanobis(x: Tensor, mean: Tensor, inv_covariance: Tensor) -> Tensor:
    """sqrt((x - mu)^T Sigma^-1 (x - mu)) per position: x (B, P, d), mean (P, d), inv_covariance (P, d, d) -> (B, P)."""
    diff = x.float() - mean
    return torch.einsum("bpd,pde,bpe->bp", diff, inv_covariance, diff).clamp_min(0).sqrt()


def gaussian_fit(total: Tensor, outer: Tensor, n: int, eps: float, chunk: int = 256) -> tuple[Tensor, Tensor]:
    """float32 mean (P, d) and inverse covariance (P, d, d) from the sums of x (P, d) and x x^T (P, d, d) of n
    samples (unbiased; one sample gives eps * I), inverted `chunk` positions at a time in the sums' precision."""
    mean = total / n
    inverse = torch.empty(outer.shape, dtype=torch.float32, device=outer.device)
    for start in range(0, len(outer), chunk):
        m = mean[start:start + chunk]
        covariance = (outer[start:start + chunk] - n * m[:, :, None] * m[:, None, :]) / max(n - 1, 1)
        covariance.diagonal(dim1=1, dim2=2).add_(eps)
        inverse[start:start + chunk] = torch.linalg.inv(covariance)
    return mean.float(), inverse


class Padim(PatchBaseline):
    """Gaussians per group (buffers `mean_<i>` (P, d) and `inv_covariance_<i>` (P, d, d)); `channels` the subset."""

    config: PadimConfig
    channels: Tensor  # a buffer (register_buffer in __init__)
    state_keys = ("mean", "inv_covariance")

    def __init__(self, config: PadimConfig, backbone: Backbone | None = None) -> None:
        super().__init__(config, backbone)
        available = sum(c for c, s in zip(self.backbone.channels, self.backbone.strides, strict=True) if s in STRIDES)
        if config.dims > available:
            raise ConfigError(f"PaDiM dims {config.dims} exceeds the {available} channels of backbone "
                              f"{config.backbone} at strides {STRIDES}")
        g = torch.Generator().manual_seed(config.seed)
        self.register_buffer("channels", torch.randperm(available, generator=g)[:config.dims].sort().values)

    def describe(self, group: int) -> str:
        return f"{self.group_state(group, 'mean').shape[0]} Gaussians of {self.config.dims} channels"

    def embed(self, images: Tensor) -> Tensor:
        maps = self.backbone_maps(images, STRIDES)
        size = maps[0].shape[-2:]
        full = torch.cat([m if m.shape[-2:] == size else F.interpolate(m, size=size, mode="nearest") for m in maps], 1)
        return full.index_select(1, self.channels.to(full.device))

    def fit_group(self, embeddings: Iterator[Tensor]) -> dict[str, Tensor]:
        n, total, outer = 0, None, None
        for e in embeddings:
            x = e.flatten(2).permute(2, 0, 1).double()  # (P, B, d)
            if total is None or outer is None:
                total, outer = x.sum(dim=1), x.transpose(1, 2) @ x
            else:
                total += x.sum(dim=1)
                outer.baddbmm_(x.transpose(1, 2), x)  # in place: no second (P, d, d) float64 array
            n += e.shape[0]
        if total is None or outer is None:  # PatchBaseline.fit raises first when a group has no image
            raise ValueError("no embeddings to fit")
        mean, inv_covariance = gaussian_fit(total, outer, n, self.config.covariance_eps)
        return {"mean": mean, "inv_covariance": inv_covariance}

    def score_group(self, group: int, embeddings: Tensor) -> tuple[Tensor, None]:
        b, _, h, w = embeddings.shape
        x = embeddings.flatten(2).transpose(1, 2)
        dist = mahalanobis(x, self.group_state(group, "mean"), self.group_state(group, "inv_covariance"))
        return dist.reshape(b, 1, h, w), None
