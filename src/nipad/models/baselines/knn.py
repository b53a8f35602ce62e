"""kNN: the plain distance-to-normal baseline on the token grid OneNIP reconstructs.

PatchCore's locally aware features (stride-8 and stride-16 maps, each 3x3-average-pooled), area-pooled to the
stride-16 grid (14 x 14 at 224 px), every training patch kept (no coreset), anomaly map = distance of each patch to
its nearest training patch, image score = max of the smoothed map. It tells how much a method adds beyond
"how far is this patch from every normal one" on the same tokens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from nipad.models.baselines.memory_bank import nearest_neighbours
from nipad.models.baselines.template import BaselineConfig, PatchBaseline
from nipad.models.neck import PooledNeck

STRIDES = (8, 16)


@dataclass(frozen=True)
class KnnConfig(BaselineConfig):
    model: ClassVar[str] = "knn"


class Knn(PatchBaseline):
    """All training patches per group (buffer `bank_<i>`, float16, (N * h * w, C))."""

    config: KnnConfig
    state_keys = ("bank",)
    neck = PooledNeck()  # the same pooling as OneNIP's cpu-preset tokens

    def describe(self, group: int) -> str:
        return f"{len(self.group_state(group, 'bank'))} bank patches"

    def embed(self, images: Tensor) -> Tensor:
        return self.neck(self.backbone_maps(images, STRIDES))

    def fit_group(self, embeddings: Iterator[Tensor]) -> dict[str, Tensor]:
        return {"bank": torch.cat([e.permute(0, 2, 3, 1).reshape(-1, e.shape[1]).half() for e in embeddings])}

    def score_group(self, group: int, embeddings: Tensor) -> tuple[Tensor, None]:
        b, c, h, w = embeddings.shape
        queries = embeddings.permute(0, 2, 3, 1).reshape(-1, c)
        dist, _ = nearest_neighbours(queries, self.group_state(group, "bank"), k=1)
        return dist.reshape(b, 1, h, w), None
