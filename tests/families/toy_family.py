"""A toy model family, declared in one module as a new model would be: its options (the `nipad train` flags of
`--model toy`), how they become its training config, and its train and load. test_registry registers it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nipad.families import CommonOptions, Family
from nipad.families.flags import Range, flag


@dataclass(frozen=True)
class ToyOptions:
    toy_level: int = flag(3, metavar="L", allowed=Range(1, 5), help="how toy-like the toy model is")
    toy_loud: bool = flag(False, help="shout while training")


@dataclass(frozen=True)
class ToyTraining:
    options: ToyOptions
    image_size: int | None


CALLS: list[tuple[Any, ...]] = []


def configure(model: str, options: ToyOptions, common: CommonOptions, device: Any) -> ToyTraining:
    return ToyTraining(options, common.image_size)


def train(config: ToyTraining, data: Any, run_dir: Path, *, ctx: Any, overwrite: bool = False) -> None:
    CALLS.append((config, data, run_dir, overwrite))


def load(run_dir: str | Path, device: Any = "cpu") -> tuple[Any, Any]:
    return "toy model", Path(run_dir)


FAMILY = Family("toy", {"toy": ToyOptions}, configure, train, load)
