"""The data set record every reader returns, its per-class counts and class filtering."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    """Train and test samples of one or more classes read from `root`; `name` tells data sets apart in `combine`."""

    name: str
    root: Path
    train: list[Sample]
    test: list[Sample]

    @property
    def classes(self) -> list[str]:
        """Sorted class names found in train or test."""
        return sorted({s.class_name for s in (*self.train, *self.test)})

    def summary(self) -> dict[str, ClassCounts]:
        """Counts per class, in class order."""
        return {c: _count(c, self.train, self.test) for c in self.classes}

    def describe(self) -> str:
        """The summary as a plain-text table, with a total line, for logs and the CLI."""
        rows = [(c, n.train, n.test_normal, n.test_anomalous, n.masks) for c, n in self.summary().items()]
        total = ("total", *(sum(r[i] for r in rows) for i in range(1, 5)))
        header = ("class", "train", "test normal", "test anomalous", "masks")
        table = [header, *rows, total]
        widths = [max(len(str(r[i])) for r in table) for i in range(5)]
        lines = ["  ".join(str(v).rjust(w) if i else str(v).ljust(w) for i, (v, w) in enumerate(zip(r, widths)))
                 for r in table]
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
    )
