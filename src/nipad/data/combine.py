"""Merge several data sets into one multi-class set (the paper trains MVTec+VisA+BTAD as one unified model)."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from nipad.data.dataset import Dataset, sort_samples
from nipad.data.sample import Sample
from nipad.errors import DataError


def combine(datasets: Sequence[Dataset], name: str | None = None) -> Dataset:
    """One data set holding all samples; a class name found in several data sets becomes `<dataset name>/<class>`
    in each of them, other names stay as they are. `name` defaults to the data set names joined by "+"."""
    if not datasets:
        raise DataError("combine() got no data sets. Fix: pass at least one opened data set.")
    clashes = _clashing_classes(datasets)
    names = [d.name for d in datasets]
    ambiguous = sorted(c for c in clashes if _has_twin_names([d.name for d in datasets if c in d.classes]))
    if ambiguous:
        raise DataError(
            f"class(es) {', '.join(ambiguous)} appear in several data sets with the same name, so a name prefix "
            f"cannot tell them apart. Fix: open them with distinct names, e.g. open_dataset(root, name='...')."
        )
    parts = [_prefix_classes(d, clashes) for d in datasets]
    return Dataset(
        name=name or "+".join(names),
        root=Path(os.path.commonpath([str(d.root.resolve()) for d in datasets])),
        train=sort_samples(s for d in parts for s in d.train),
        test=sort_samples(s for d in parts for s in d.test),
        notes=_merged_notes(parts),
    )


def _prefix_classes(dataset: Dataset, clashes: set[str]) -> Dataset:
    """`dataset` with its classes in `clashes` renamed `<dataset name>/<class>`."""

    def fix(s: Sample) -> Sample:
        return replace(s, class_name=f"{dataset.name}/{s.class_name}") if s.class_name in clashes else s

    notes = {(f"{dataset.name}/{c}" if c in clashes else c): n for c, n in dataset.notes.items()}
    return replace(dataset, train=[fix(s) for s in dataset.train], test=[fix(s) for s in dataset.test], notes=notes)


def _merged_notes(parts: Sequence[Dataset]) -> dict[str, tuple[str, ...]]:
    """The notes of all parts; those of a whole data set (key "") prefixed with its root."""
    notes: dict[str, tuple[str, ...]] = {}
    for d in parts:
        for c, lines in d.notes.items():
            notes[c] = notes.get(c, ()) + (tuple(f"{d.root}: {line}" for line in lines) if not c else lines)
    return notes


def _has_twin_names(names: list[str]) -> bool:
    return len(set(names)) < len(names)


def _clashing_classes(datasets: Sequence[Dataset]) -> set[str]:
    """Class names present in more than one data set."""
    counts = Counter(c for d in datasets for c in d.classes)
    return {c for c, k in counts.items() if k > 1}
