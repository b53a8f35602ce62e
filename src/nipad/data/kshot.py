"""Few-shot selection of normal images."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable

from nipad.data.dataset import sort_samples
from nipad.data.sample import NORMAL, Sample
from nipad.errors import ConfigError


def kshot(samples: Iterable[Sample], k: int, seed: int = 0) -> list[Sample]:
    """`k` normal samples per class (all of a class when it has no more than `k`), sorted.

    Each class draws from its own generator seeded by (seed, class name), so a class's pick does not change when
    other classes are added or removed.
    """
    if k < 1:
        raise ConfigError(f"k={k} is invalid for k-shot selection. Fix: give k >= 1.")
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        if s.label == NORMAL:
            by_class[s.class_name].append(s)
    picked: list[Sample] = []
    for class_name, members in sorted(by_class.items()):
        members = sort_samples(members)
        picked += members if k >= len(members) else random.Random(f"{seed}/{class_name}").sample(members, k)
    return sort_samples(picked)
