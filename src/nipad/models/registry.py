"""Registry of model families: how `nipad train` trains each `--model` and how a run directory is loaded back.

Every loaded model answers the same call: `model(images uint8 B x 3 x H x W) -> {"pred_score": (B,),
"anomaly_map": (B, 1, S, S), "prompt_class": list[str] | None, ...}` with `model.config.image_size` = S, so
evaluation, prediction, the report and the service work with any family. A run's config.json names its family
(key "family"; absent means "reconstruction", i.e. OneNIP/UniAD).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nipad.errors import ConfigError


@dataclass(frozen=True)
class Family:
    """`train(args, dataset, samples, ctx) -> None` writes a run into args.out; `load(run_dir, device) -> (model, info)`."""

    name: str
    models: tuple[str, ...]
    train: Callable[..., Any]
    load: Callable[..., Any]


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


def family_of_model(model: str) -> Family:
    for family in FAMILIES.values():
        if model in family.models:
            return family
    raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(all_models())}")


def family_named(name: str) -> Family:
    if name not in FAMILIES:
        raise ConfigError(f"this run was made by model family {name!r}, which this nipad does not have")
    return FAMILIES[name]


def all_models() -> list[str]:
    return [m for f in FAMILIES.values() for m in f.models]
