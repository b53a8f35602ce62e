"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from nipad.data import Dataset, combine, open_dataset


class CommandParser(argparse.ArgumentParser):
    """A sub-command's parser whose flags may depend on the words it parses: `prepare(parser, words)` runs before
    they are parsed (`nipad train` adds the flags of the --model given), and `explain(args)`, where given, says why
    words were not recognised."""

    def __init__(self, *args: Any, prepare: Callable[[argparse.ArgumentParser, list[str]], None] | None = None,
                 explain: Callable[[argparse.Namespace], str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.prepare, self.explain = prepare, explain

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        if self.prepare is not None:
            self.prepare(self, list(sys.argv[1:] if args is None else args))
        parsed, unknown = super().parse_known_args(args, namespace)
        if unknown and self.explain is not None:
            self.error(f"unrecognized arguments: {' '.join(unknown)} ({self.explain(parsed)})")
        return parsed, unknown


def add_data_args(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--data", action="append", required=required, metavar="ROOT",
                        help="data set root (MVTec AD, VisA, BTAD layout or one class folder); repeat to combine")
    parser.add_argument("--classes", default=None, help="comma-separated class names to keep (default: all)")


def class_list(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def open_data(roots: Sequence[str], classes: str | None) -> Dataset:
    """Open every root and combine them into one multi-class set (class names made unique)."""
    datasets = [open_dataset(root) for root in roots]
    merged = datasets[0] if len(datasets) == 1 else combine(datasets)
    wanted = class_list(classes)
    if wanted:
        from nipad.data import select_classes
        merged = select_classes(merged, wanted)
    return merged


def add_threshold_arg(parser: argparse.ArgumentParser) -> None:
    """`--threshold T` / `--threshold CLASS=T` (repeatable): image thresholds set by hand over the calibrated ones."""
    parser.add_argument("--threshold", action="append", metavar="[CLASS=]T",
                        help="image threshold set by hand instead of the calibrated one: T for every class, CLASS=T "
                             "for one (repeat for several); a score above it is a defect and pred_score_normalized "
                             "puts it at 0.5. Pixel thresholds stay calibrated")
