"""The per-class pool of normal image prompts and the cosine-similarity prompt selection.

At inference the class of a test image need not be known: each image takes the prompt whose descriptor (the
spatial mean of its neck features, L2-normalised) is most cosine-similar to its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def descriptor(features: Tensor) -> Tensor:
    """(B, C, h, w) neck features -> (B, C) unit-norm global descriptors."""
    return F.normalize(features.float().mean(dim=(2, 3)), dim=1)


def central(features: Tensor, k: int) -> list[int]:
    """Indices of the k most typical images: highest mean cosine similarity of their descriptors to all of them
    (computed against the mean descriptor, so memory stays linear in the number of images)."""
    d = descriptor(features)
    return (d @ d.mean(dim=0)).argsort(descending=True)[:k].tolist()


def spread(features: Tensor, k: int) -> list[int]:
    """Indices of k images that cover the set: the most typical one, then greedily the one least cosine-similar to
    all chosen so far (k-center on the descriptors), so rare looks of a class get a prompt of their own."""
    d = descriptor(features)
    chosen = central(features, 1)
    nearest = d @ d[chosen[0]]
    while len(chosen) < min(k, len(d)):
        pick = int(nearest.argmin())
        chosen.append(pick)
        nearest = torch.maximum(nearest, d @ d[pick])
    return chosen


def neighbours(features: Tensor, k: int) -> Tensor:
    """(N, k) indices of each image's k most cosine-similar others among `features` (itself only when alone)."""
    d = descriptor(features)
    sim = d @ d.T
    if len(d) > 1:
        sim.fill_diagonal_(-2.0)
    return sim.topk(min(k, max(1, len(d) - 1)), dim=1).indices


class PromptPool(nn.Module):
    """Prompt features (K, C, h, w) with the class index of each; class names in `class_names`."""

    features: Tensor  # buffers (register_buffer in __init__)
    owners: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.class_names: list[str] = []
        self.register_buffer("features", torch.empty(0))
        self.register_buffer("owners", torch.empty(0, dtype=torch.long))

    def __len__(self) -> int:
        return int(self.owners.numel())

    def add(self, class_name: str, features: Tensor) -> None:
        """Append prompts of `class_name` (a new class is appended to `class_names`)."""
        if class_name not in self.class_names:
            self.class_names.append(class_name)
        owner = self.class_names.index(class_name)
        features = features.detach().to(torch.float32)
        self.features = features if len(self) == 0 else torch.cat([self.features, features.to(self.features)])
        self.owners = torch.cat([self.owners, torch.full((features.shape[0],), owner, dtype=torch.long,
                                                         device=self.owners.device)])

    def load(self, class_names: list[str], features: Tensor, owners: Tensor) -> None:
        self.class_names = list(class_names)
        self.features, self.owners = features.to(torch.float32), owners.to(torch.long)

    def select(self, features: Tensor) -> Tensor:
        """Index of the most cosine-similar prompt for each query (B,)."""
        if len(self) == 0:
            raise RuntimeError("the prompt pool is empty")
        sim = descriptor(features) @ descriptor(self.features).to(features.device).T
        return sim.argmax(dim=1)

    def class_of(self, index: Tensor) -> list[str]:
        return [self.class_names[int(self.owners[i])] for i in index.tolist()]
