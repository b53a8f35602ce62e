"""Argument helpers shared by the sub-commands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from nipad.data import Dataset, combine, open_dataset


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
