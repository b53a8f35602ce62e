"""The calibration split every family makes before it fits: some normal training images are held out to set the
thresholds on, since a model scores the images it fitted on lower than new ones (nipad.runs.trained_images)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from nipad.data.sample import Sample


def split_calibration(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out `fraction` of each class's normal training images (at least one where the class has 5 or more)."""
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_class[s.class_name].append(s)
    train, held = [], []
    for name in sorted(by_class):
        items = by_class[name]
        n_held = 0 if fraction <= 0 or len(items) < 5 else max(1, round(fraction * len(items)))
        order = np.random.default_rng([seed, len(items)]).permutation(len(items))
        held += [items[i] for i in sorted(order[:n_held])]
        train += [items[i] for i in sorted(order[n_held:])]
    return train, held
