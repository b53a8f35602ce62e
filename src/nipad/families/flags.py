"""A typed options dataclass as command-line flags: each field is a flag (`--` and its name with dashes), its type the
flag's type, and its metadata (`flag(...)`) the help, choices, metavar and allowed range, which the parser enforces.

Types: `bool` is a switch (store_true), `bool | None` a `--X / --no-X` pair, `list[str] | None` a repeatable option,
`int`, `float` or `str` (or `... | None`, None meaning unset) an option taking a value.
"""

from __future__ import annotations

import argparse
import math
import types
from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Union, get_args, get_origin, get_type_hints

FLAG = "nipad.flag"  # the metadata key of a field's FlagInfo


@dataclass(frozen=True)
class Range:
    """Values from `low` to `high` (None: unbounded), each end included unless open; NaN is in no range."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, value: float) -> bool:
        if math.isnan(value):
            return False
        below = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        above = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        return not (below or above)

    def __str__(self) -> str:
        if self.high is None:
            return f"{'more than' if self.open_low else 'at least'} {self.low:g}"
        if self.low is None:
            return f"{'less than' if self.open_high else 'at most'} {self.high:g}"
        return f"in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}{')' if self.open_high else ']'}"


AT_LEAST_0, AT_LEAST_1 = Range(0), Range(1)
POSITIVE = Range(0, math.inf, open_low=True, open_high=True)  # finite and above 0
SHARE = Range(0, 1)


@dataclass(frozen=True)
class FlagInfo:
    help: str | None = None
    choices: Sequence[str] | None = None
    metavar: str | None = None
    allowed: Range | None = None


def flag(default: Any = None, *, help: str | None = None, choices: Sequence[str] | None = None,
         metavar: str | None = None, allowed: Range | None = None) -> Any:
    """A dataclass field that is a flag: its default (None: unset), and how `--help` shows it and the parser checks
    it."""
    return field(default=default, metadata={FLAG: FlagInfo(help, choices, metavar, allowed)})


class Checked:
    """An argparse `type=` that converts with `base` and refuses a value outside `allowed`, naming the range."""

    def __init__(self, base: type, allowed: Range) -> None:
        self.base, self.allowed = base, allowed
        self.__name__ = base.__name__  # argparse's "invalid int value" names it

    def __call__(self, text: str) -> Any:
        value = self.base(text)
        if value not in self.allowed:
            raise argparse.ArgumentTypeError(f"must be {self.allowed}, got {text}")
        return value


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(the type, whether None is allowed) of `X` or `X | None`."""
    if get_origin(hint) in (Union, types.UnionType):
        args = [a for a in get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return hint, False


def add_flags(parser: argparse._ActionsContainer, options: type) -> None:
    """Add a flag to `parser` (a parser or an argument group) for each field of the dataclass `options`."""
    hints = get_type_hints(options)
    for item in fields(options):
        if item.default is MISSING:
            raise TypeError(f"{options.__name__}.{item.name} has no default: every flag is optional")
        info = item.metadata.get(FLAG, FlagInfo())
        kind, optional = _unwrap(hints[item.name])
        name = "--" + item.name.replace("_", "-")
        common: dict[str, Any] = {"dest": item.name, "default": item.default, "help": info.help}
        if kind is bool:
            parser.add_argument(name, action=argparse.BooleanOptionalAction if optional else "store_true", **common)
        elif get_origin(kind) is list:
            parser.add_argument(name, action="append", metavar=info.metavar, **common)
        else:
            convert = Checked(kind, info.allowed) if info.allowed else kind
            parser.add_argument(name, type=convert, choices=info.choices, metavar=info.metavar, **common)


def read_flags(args: argparse.Namespace, options: type) -> Any:
    """The `options` dataclass holding the parsed values of its flags."""
    return options(**{item.name: getattr(args, item.name) for item in fields(options)})
