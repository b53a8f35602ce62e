"""The model families nipad ships, listed once, and `load_run` for any run directory (its config.json names the
family)."""

from __future__ import annotations

from pathlib import Path

import torch

from nipad.engine import anomalysd, baselines, reconstruction

from nipad.runs import integrity
from nipad.engine.family import Family
from nipad.runs.run_info import RunInfo, read_family
from nipad.errors import ConfigError
from nipad.models.output import AnomalyModel

FAMILIES: tuple[Family, ...] = (reconstruction.FAMILY, anomalysd.FAMILY, *baselines.FAMILIES)


def all_models() -> list[str]:
    return [m for f in FAMILIES for m in f.models]


def family_of_model(model: str) -> Family:
    for family in FAMILIES:
        if model in family.models:
            return family
    raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(all_models())}")


def family_named(name: str) -> Family:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise ConfigError(f"this run was made by model family {name!r}, which this nipad does not have")


def load_run(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[AnomalyModel, RunInfo]:
    """Load any run directory with its family's loader: returns (model in eval mode, run info), of one version of
    the run even while another process updates it (nipad.runs.integrity.consistent)."""
    return integrity.consistent(run_dir, lambda: family_named(read_family(run_dir)).load(run_dir, device))
