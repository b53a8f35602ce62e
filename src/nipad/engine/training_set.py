"""What OneNIP / UniAD training draws from: the clean images' features with their classes and possible prompts, the
pseudo anomalies, and each class's prompt pool."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from nipad.engine.features import SyntheticImages
from nipad.models.onenip.detector import Detector
from nipad.models.prompt_pool import neighbours, spread


@dataclass
class TrainingSet:
    """What the epochs draw from: the clean images' features (`bank`, CPU float16), each image's class index
    (`owner`), each image's possible prompts (`prompts`, from `prompt_candidates`), and the pseudo anomalies: a
    fixed `pool` of (features, masks) of V variants per image, or `synthetic` images made fresh at every step (pool
    None), or neither (no restoration)."""

    bank: Tensor
    owner: np.ndarray
    prompts: list[np.ndarray]
    synthetic: SyntheticImages | None
    pool: tuple[Tensor, Tensor] | None

    @property
    def fresh(self) -> bool:
        return self.synthetic is not None and self.pool is None


def prompt_candidates(bank: Tensor, members: list[np.ndarray], owner: np.ndarray, k: int) -> list[np.ndarray]:
    """Each training image's possible prompts: every image of its class (k = 0, the authors' way) or its k most
    cosine-similar other images of its class."""
    if k == 0:
        return [members[c] for c in owner]
    candidates: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(owner)
    for m in members:
        for i, near in zip(m, neighbours(bank[m], k).numpy()):
            candidates[i] = m[near]
    return candidates


def prompt_indices(index: Tensor, candidates: list[np.ndarray], seed: int, epoch: int) -> Tensor:
    """One of its candidates as each query's prompt, uniformly at random, deterministic per (seed, epoch, image)."""
    picks = []
    for i in index.tolist():
        options = candidates[i]
        picks.append(int(options[np.random.default_rng([seed, epoch, i, 1]).integers(len(options))]))
    return torch.tensor(picks)


def build_prompts(detector: Detector, data: TrainingSet, classes: list[str], per_class: int,
                  device: torch.device) -> None:
    """Each class's prompt pool: its most typical normal training image, so a test image's nearest prompt is of
    its class more often than with a random one (ELPV: 95% vs 88%), then `per_class` - 1 more that cover the class
    (`spread`); UniAD keeps them only to name the class."""
    detector.prompts.load([], torch.empty(0), torch.empty(0, dtype=torch.long))
    for c, name in enumerate(classes):
        members = np.flatnonzero(data.owner == c)
        picks = members[spread(data.bank[members], per_class)]
        detector.prompts.add(name, data.bank[torch.as_tensor(picks)].float().to(device))
