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
    """One data set holding all samples; a class name found in several data sets becomes `<label>/<class>` in each
    of them, other names stay as they are. A data set's label is its name (the layout kind, e.g. "mvtec", unless
    opened with another) where no other data set has that name, else its root folder's name ("lot1" for
    /data/lot1), or, where those match too, the first folder that tells the roots apart. `name` defaults to the
    labels joined by "+". The same folder given twice is a DataError."""
    if not datasets:
        raise DataError("combine() got no data sets. Fix: pass at least one opened data set.")
    labels = _labels(datasets)
    clashes = _clashing_classes(datasets)
    parts = [_prefix_classes(d, label, clashes) for d, label in zip(datasets, labels)]
    return Dataset(
        name=name or "+".join(labels),
        root=Path(os.path.commonpath([str(d.root.resolve()) for d in datasets])),
        train=sort_samples(s for d in parts for s in d.train),
        test=sort_samples(s for d in parts for s in d.test),
        notes=_merged_notes(parts),
    )


def _labels(datasets: Sequence[Dataset]) -> list[str]:
    """A distinct, readable label per data set (see `combine`)."""
    roots = [d.root.resolve() for d in datasets]
    twice = sorted({str(r) for r in roots if roots.count(r) > 1})
    if twice:
        raise DataError(f"the data set folder {twice[0]} is given more than once. Fix: give each folder once.")
    names = [d.name for d in datasets]
    labels = list(names)
    for shared in {n for n in names if names.count(n) > 1}:
        group = [i for i, n in enumerate(names) if n == shared]
        twins = [roots[i] for i in group]
        common = Path(os.path.commonpath([str(r) for r in twins]))
        for scheme in (lambda r: r.name, lambda r, c=common: r.relative_to(c).parts[0] if r != c else "", str):
            candidates = [str(scheme(r)) for r in twins]
            if all(candidates) and len(set(candidates)) == len(candidates):
                break
        for i, label in zip(group, candidates):
            labels[i] = label
    if len(set(labels)) < len(labels):  # a folder named like another data set's layout: full paths tell them apart
        labels = [label if labels.count(label) == 1 else str(root) for label, root in zip(labels, roots)]
    return labels


def _prefix_classes(dataset: Dataset, label: str, clashes: set[str]) -> Dataset:
    """`dataset` with its classes in `clashes` renamed `<label>/<class>`."""

    def fix(s: Sample) -> Sample:
        return replace(s, class_name=f"{label}/{s.class_name}") if s.class_name in clashes else s

    notes = {(f"{label}/{c}" if c in clashes else c): n for c, n in dataset.notes.items()}
    return replace(dataset, train=[fix(s) for s in dataset.train], test=[fix(s) for s in dataset.test], notes=notes)


def _merged_notes(parts: Sequence[Dataset]) -> dict[str, tuple[str, ...]]:
    """The notes of all parts; those of a whole data set (key "") prefixed with its root."""
    notes: dict[str, tuple[str, ...]] = {}
    for d in parts:
        for c, lines in d.notes.items():
            notes[c] = notes.get(c, ()) + (tuple(f"{d.root}: {line}" for line in lines) if not c else lines)
    return notes


def _clashing_classes(datasets: Sequence[Dataset]) -> set[str]:
    """Class names present in more than one data set."""
    counts = Counter(c for d in datasets for c in d.classes)
    return {c for c, k in counts.items() if k > 1}
