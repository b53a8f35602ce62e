"""What `nipad train` hands a model family to train on, after --classes and --shots chose it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nipad.data.sample import Sample


@dataclass(frozen=True)
class TrainData:
    """The normal training images (after --shots), every class of the data sets (a 0-shot run has no images but its
    classes) and the data roots, recorded in the run."""

    samples: Sequence[Sample]
    classes: list[str]
    roots: list[str]
