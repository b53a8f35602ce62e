"""The one interface every model family implements: `train(config, data, run_dir)` writes a run directory and
`load(run_dir)` gives back the model (answering nipad.models.output's call) with the run's record.

`config` is the family's own typed training config (nipad.engine.reconstruction, .baselines, .anomalysd); the
command line builds it (nipad.cli.train_args), so no family reads command-line arguments. The list of families is
nipad.engine.families.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, Protocol, TypeVar

import torch

from nipad.data.sample import Sample
from nipad.engine.distributed import Context
from nipad.runs.run_info import RunInfo
from nipad.models.output import AnomalyModel

C = TypeVar("C", contravariant=True)


@dataclass(frozen=True)
class TrainData:
    """What a family trains on: the normal training images (after --shots), every class of the data sets (a 0-shot
    run has no images but its classes) and the data roots, recorded in the run."""

    samples: Sequence[Sample]
    classes: list[str]
    roots: list[str]


class Train(Protocol[C]):
    def __call__(self, config: C, data: TrainData, run_dir: Path, *, ctx: Context, overwrite: bool = False) -> None:
        """Write a finished run into run_dir (resuming an unfinished one there; a finished one only with overwrite)."""


class Load(Protocol):
    def __call__(self, run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[AnomalyModel, RunInfo]:
        """The run's model in eval mode on `device`, and its record."""


@dataclass(frozen=True)
class Family(Generic[C]):
    """`name` is what config.json records; `models` the `--model` values it trains."""

    name: str
    models: tuple[str, ...]
    train: Train[C]
    load: Load
