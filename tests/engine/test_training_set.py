"""Prompt candidates and the per-epoch prompt draw of OneNIP training."""

import numpy as np
import torch

from nipad.engine.training_set import prompt_candidates, prompt_indices
from nipad.models.prompt_pool import descriptor


def test_prompt_candidates_are_the_class_or_its_nearest_images_of_the_class():
    bank = torch.rand(10, 4, 2, 2) ** 3
    owner = np.array([0, 1] * 5)
    members = [np.flatnonzero(owner == c) for c in (0, 1)]
    everyone = prompt_candidates(bank, members, owner, 0)
    assert all(set(everyone[i]) == set(members[owner[i]]) for i in range(10))
    near = prompt_candidates(bank, members, owner, 2)
    d = descriptor(bank)
    for i in range(10):
        others = [j for j in members[owner[i]] if j != i]
        best = sorted(others, key=lambda j: -float(d[i] @ d[j]))[:2]
        assert sorted(near[i].tolist()) == sorted(best)
    picks = prompt_indices(torch.arange(10), near, seed=1, epoch=0)
    assert all(int(picks[i]) in near[i] for i in range(10))
    assert torch.equal(picks, prompt_indices(torch.arange(10), near, seed=1, epoch=0))
