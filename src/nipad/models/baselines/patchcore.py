"""PatchCore (Roth et al., CVPR 2022): a greedy-coreset memory bank of locally aware patch features, scored by the
distance to the nearest bank patch, with the paper's reweighting of the image score (its eq. 7).

Locally aware features: the stride-8 and stride-16 backbone maps (the paper's ResNet layer2 + layer3) are each
3x3-average-pooled (stride 1), the stride-16 one is resized (bilinear) to the stride-8 grid, and both are
concatenated. The paper's adaptive pooling of each layer to a common channel count is left out: the EfficientNet
maps have 40 + 112 channels, fewer than the paper's 1024 target.

Memory: the bank keeps ceil(coreset_ratio * N) patches (at least min(N, min_coreset), so few-shot banks are whole),
stored as float16. At 224 px a training image gives 28 x 28 = 784 patches of 152 channels: 3,600 images are
2.8 M patches = 0.86 GB in float16 while the coreset is picked (plus the 128-dimensional float32 projection used
for the picking, 1.44 GB: 2.3 GB in all); the 1% bank kept is 8.6 MB.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from nipad.errors import ConfigError
from nipad.models.baselines.memory_bank import gather_rows, greedy_coreset, nearest_neighbours
from nipad.models.baselines.template import BaselineConfig, PatchBaseline

STRIDES = (8, 16)


@dataclass(frozen=True)
class PatchCoreConfig(BaselineConfig):
    """`num_neighbours` is the paper's b (support size of the image-score reweighting; 1 = plain max)."""

    model: ClassVar[str] = "patchcore"
    coreset_ratio: float = 0.01
    min_coreset: int = 4096
    projection_dim: int = 128
    num_neighbours: int = 9

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.coreset_ratio <= 1.0:
            raise ConfigError(f"--coreset-ratio must be in (0, 1], got {self.coreset_ratio}")
        if self.num_neighbours < 1 or self.projection_dim < 1 or self.min_coreset < 1:
            raise ConfigError("PatchCore's num_neighbours, projection_dim and min_coreset must be at least 1")


def coreset_size(n_patches: int, ratio: float, minimum: int) -> int:
    return min(n_patches, max(math.ceil(ratio * n_patches), minimum))


def reweighted_score(queries: Tensor, distances: Tensor, nn_index: Tensor, bank: Tensor, b: int) -> Tensor:
    """The paper's eq. 7 per image: s = (1 - softmax over N_b(m*) of the distances of m_test,* at m*) * s*.

    queries (B, P, C) patch features, distances / nn_index (B, P) to / of each one's nearest bank patch; m_test,* is
    the patch with the largest distance s*, m* its nearest bank patch and N_b(m*) the b nearest bank patches of m*
    (m* first).
    """
    rows = torch.arange(len(queries), device=queries.device)
    top = distances.argmax(dim=1)
    s_star = distances[rows, top]
    if min(b, len(bank)) < 2:
        return s_star
    m_test = queries[rows, top].float()
    _, support = nearest_neighbours(bank[nn_index[rows, top]].float(), bank, k=b)
    d = torch.linalg.vector_norm(m_test[:, None, :] - bank[support].float(), dim=-1)
    return (1.0 - torch.softmax(d, dim=1)[:, 0]) * s_star


class PatchCore(PatchBaseline):
    """Memory bank per group (buffer `bank_<i>`, float16, (M, C))."""

    config: PatchCoreConfig
    state_keys = ("bank",)

    def describe(self, group: int) -> str:
        return f"{len(self.group_state(group, 'bank'))} bank patches"

    def embed(self, images: Tensor) -> Tensor:
        fine, coarse = (F.avg_pool2d(m, 3, stride=1, padding=1) for m in self.backbone_maps(images, STRIDES))
        coarse = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([fine, coarse], dim=1)

    def fit_group(self, embeddings: Iterator[Tensor]) -> dict[str, Tensor]:
        chunks = [e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]).half() for e in embeddings]
        total, cfg = sum(len(c) for c in chunks), self.config
        n = coreset_size(total, cfg.coreset_ratio, cfg.min_coreset)
        if n == total:
            return {"bank": torch.cat(chunks)}
        return {"bank": gather_rows(chunks, greedy_coreset(chunks, n, cfg.projection_dim, cfg.seed))}

    def score_group(self, group: int, embeddings: Tensor) -> tuple[Tensor, Tensor]:
        bank = self.group_state(group, "bank")
        b, c, h, w = embeddings.shape
        queries = embeddings.permute(0, 2, 3, 1).reshape(b, h * w, c)
        dist, index = nearest_neighbours(queries.reshape(-1, c), bank, k=1)
        dist, index = dist[:, 0].reshape(b, h * w), index[:, 0].reshape(b, h * w)
        scores = reweighted_score(queries, dist, index, bank, self.config.num_neighbours)
        return dist.reshape(b, 1, h, w), scores
