"""The data set record every reader returns, its per-class counts and class filtering."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nipad.data.sample import Sample
from nipad.errors import DataError


@dataclass(frozen=True)
class ClassCounts:
    """Image counts of one class: training images, normal and anomalous test images, anomalous ones with a mask."""

    train: int
    test_normal: int
    test_anomalous: int
    masks: int


@dataclass(frozen=True)
class Dataset:
    """Train and test samples of one or more classes read from `root`; `name` tells data sets apart in `combine`.

    `notes` maps a class name (or "" for the whole data set) to lines a user should read before training, such as
    how a reader without a test split made one (`nipad.data.plain_folder`); `describe` prints them.
    """

    name: str
    root: Path
    train: list[Sample]
    test: list[Sample]
    notes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        """Sorted class names found in train or test."""
        return sorted({s.class_name for s in (*self.train, *self.test)})

    def summary(self) -> dict[str, ClassCounts]:
        """Counts per class, in class order."""
        return {c: _count(c, self.train, self.test) for c in self.classes}

    def describe(self) -> str:
        """The summary as a plain-text table, with a total line, for logs and the CLI."""
        counts = {c: (n.train, n.test_normal, n.test_anomalous, n.masks) for c, n in self.summary().items()}
        rows = [(c, *n) for c, n in counts.items()]
        total = ("total", *(sum(n[i] for n in counts.values()) for i in range(4)))
        header = ("class", "train", "test normal", "test anomalous", "masks")
        table = [header, *rows, total]
        widths = [max(len(str(r[i])) for r in table) for i in range(5)]
        lines = ["  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
                 for r in table]
        by_type = [f"  {c}: {_defect_types(c, self.test)}" for c in self.classes
                   if any(s.is_anomalous and s.class_name == c for s in self.test)]
        if by_type:
            lines += ["test anomalous by defect type (masks):", *by_type]
        notes = [f"  {c + ': ' if c else ''}{line}" for c in sorted(self.notes) for line in self.notes[c]]
        if notes:
            lines += ["notes:", *notes]
        return f"{self.name} ({self.root})\n" + "\n".join(lines)


def _count(class_name: str, train: list[Sample], test: list[Sample]) -> ClassCounts:
    test_c = [s for s in test if s.class_name == class_name]
    anomalous = [s for s in test_c if s.is_anomalous]
    return ClassCounts(
        train=sum(s.class_name == class_name for s in train),
        test_normal=len(test_c) - len(anomalous),
        test_anomalous=len(anomalous),
        masks=sum(s.mask_path is not None for s in anomalous),
    )


def _defect_types(class_name: str, test: list[Sample]) -> str:
    """"broken 2 (2), crack 1 (0)": anomalous test images of `class_name` per defect type, masks in brackets."""
    counts: dict[str, list[int]] = {}
    for s in test:
        if s.is_anomalous and s.class_name == class_name:
            n = counts.setdefault(s.defect_type, [0, 0])
            n[0] += 1
            n[1] += s.mask_path is not None
    return ", ".join(f"{t} {n} ({m})" for t, (n, m) in sorted(counts.items()))


def sort_samples(samples: Iterable[Sample]) -> list[Sample]:
    """Samples in the one deterministic order every reader uses: class, defect type, image path."""
    return sorted(samples, key=lambda s: (s.class_name, s.defect_type, str(s.image_path)))


def pick_classes(available: Sequence[str], wanted: Sequence[str] | None, root: Path) -> list[str]:
    """The requested classes (all when `wanted` is None), sorted; an unknown name is a DataError listing the choices."""
    if wanted is None:
        return sorted(available)
    if isinstance(wanted, str):
        wanted = [wanted]
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        raise DataError(
            f"unknown class {', '.join(repr(c) for c in unknown)} in {root}; "
            f"available classes: {', '.join(sorted(available))}. Fix: pick classes from that list."
        )
    return sorted(set(wanted))


def select_classes(dataset: Dataset, classes: Sequence[str] | None) -> Dataset:
    """The data set restricted to `classes` (None keeps all)."""
    keep = set(pick_classes(dataset.classes, classes, dataset.root))
    return Dataset(
        name=dataset.name,
        root=dataset.root,
        train=[s for s in dataset.train if s.class_name in keep],
        test=[s for s in dataset.test if s.class_name in keep],
        notes={c: n for c, n in dataset.notes.items() if c in keep},
    )
