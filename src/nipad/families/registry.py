"""The one registry of model families. A family is declared in one module under nipad.families: the options of each
`--model` value it trains (a dataclass whose fields are that model's `nipad train` flags, nipad.families.flags), how
they become its training config, and its train and load; the module registers it here. `nipad train`, the Python API
and `load_run` find families here, so none of them lists the models. Torch-free: building the parser imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from nipad.errors import ConfigError
from nipad.families.flags import AT_LEAST_0, AT_LEAST_1, Range, flag

if TYPE_CHECKING:
    import torch

    from nipad.data.train_data import TrainData
    from nipad.engine.distributed import Context
    from nipad.models.output import AnomalyModel
    from nipad.runs.run_info import RunInfo

C = TypeVar("C")
C_contra = TypeVar("C_contra", contravariant=True)


@dataclass(frozen=True)
class CommonOptions:
    """The `nipad train` flags every model takes, besides --data, --classes, --model, --out and --overwrite."""

    image_size: int | None = flag()
    backbone: str | None = flag(help="lite0 (default), lite1, lite2, or a timm EfficientNet name with "
                                     "--backbone-weights")
    backbone_weights: str | None = flag(metavar="PATH", help="local weights file for the backbone")
    batch_size: int | None = flag(allowed=AT_LEAST_1)
    shots: int | None = flag(metavar="K", help="train on K normal images per class", allowed=AT_LEAST_0)
    seed: int | None = flag(allowed=AT_LEAST_0)
    device: str | None = flag(help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    false_alarm_rate: float | None = flag(
        metavar="RATE", allowed=Range(0, 1, open_low=True, open_high=True),
        help="target false alarm rate of the thresholds set on held-out normal images (default 0.01)")


class Train(Protocol[C_contra]):
    def __call__(self, config: C_contra, data: TrainData, run_dir: Path, *, ctx: Context,
                 overwrite: bool = False) -> None:
        """Write a finished run into run_dir (resuming an unfinished one there; a finished one only with overwrite)."""


class Load(Protocol):
    def __call__(self, run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[AnomalyModel, RunInfo]:
        """The run's model in eval mode on `device`, and its record."""


@dataclass(frozen=True)
class Family(Generic[C]):
    """`name` is what config.json records; `options` maps each `--model` value it trains to that model's options
    dataclass; `configure(model, options, common, device)` gives the training config `train` takes (`device` is where
    it will train: a default may depend on it)."""

    name: str
    options: Mapping[str, type]
    configure: Callable[[str, Any, CommonOptions, torch.device], C]
    train: Train[C]
    load: Load

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.options)


_FAMILIES: list[Family] = []


def register(family: Family) -> Family:
    """Add `family`; a family name or model already taken is a programming error (ValueError)."""
    taken = {family.name} & {f.name for f in _FAMILIES} or set(family.models) & set(all_models())
    if taken:
        raise ValueError(f"model family {family.name!r}: {', '.join(sorted(taken))} is already registered")
    _FAMILIES.append(family)
    return family


def unregister(family: Family) -> None:
    _FAMILIES.remove(family)


def families() -> tuple[Family, ...]:
    return tuple(_FAMILIES)


def all_models() -> list[str]:
    """Every `--model` value, in the order the families were registered."""
    return [m for f in _FAMILIES for m in f.models]


def family_of_model(model: str) -> Family:
    for family in _FAMILIES:
        if model in family.options:
            return family
    raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(all_models())}")


def family_named(name: str) -> Family:
    for family in _FAMILIES:
        if family.name == name:
            return family
    raise ConfigError(f"this run was made by model family {name!r}, which this nipad does not have")


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[AnomalyModel, RunInfo]:
    """Load any run directory with the loader of the family its config.json names: returns (model in eval mode, run
    info), of one version of the run even while another process updates it (nipad.runs.integrity.consistent)."""
    from nipad.runs import integrity
    from nipad.runs.run_info import read_family

    return integrity.consistent(run_dir, lambda: family_named(read_family(run_dir)).load(run_dir, device))
