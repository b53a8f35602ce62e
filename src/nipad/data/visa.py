"""Reader for VisA with its official one-class split `ROOT/split_csv/1cls.csv`."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from nipad.data.checks import check_mask_sizes, require_train_images
from nipad.data.dataset import Dataset, pick_classes, sort_samples
from nipad.data.files import require_dir
from nipad.data.sample import ANOMALOUS, NORMAL, Sample
from nipad.errors import DataError

VISA_SPLIT = Path("split_csv") / "1cls.csv"
_COLUMNS = ("object", "split", "label", "image", "mask")
_LABELS = {"normal": NORMAL, "anomaly": ANOMALOUS}
_SPLITS = ("train", "test")


def read_visa(root: str | Path, classes: Sequence[str] | None = None, name: str = "visa") -> Dataset:
    """VisA samples listed in `ROOT/split_csv/1cls.csv` (object, split, label, image, mask; paths relative to ROOT).

    Anomalous images get defect type "anomaly" (the split file names no defect type) and need a mask.
    """
    root = require_dir(root, "VisA folder")
    rows = _read_rows(root / VISA_SPLIT)
    wanted = set(pick_classes(sorted({r["object"] for _, r in rows}), classes, root))
    samples = [_sample(root, line, r) for line, r in rows if r["object"] in wanted]
    _require_files(samples, root / VISA_SPLIT)
    train = sort_samples(s for s in samples if s.split == "train")
    test = sort_samples(s for s in samples if s.split == "test")
    for class_name in sorted(wanted):
        require_train_images(class_name, train, f"{root / VISA_SPLIT} rows with object={class_name},split=train")
    check_mask_sizes(test)
    return Dataset(name=name, root=root, train=train, test=test)


def _read_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of the split file, with its columns checked."""
    if not path.is_file():
        raise DataError(f"VisA split file not found: {path}. Fix: use the official VisA folder, which has "
                        f"split_csv/1cls.csv.")
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} lacks column(s) {', '.join(missing)}; it needs {', '.join(_COLUMNS)}. "
                            f"Fix: use the official 1cls.csv.")
        return [(i, {k: (v or "").strip() for k, v in row.items() if k}) for i, row in enumerate(reader, start=2)]


def _sample(root: Path, line: int, row: dict[str, str]) -> Sample:
    where = f"{root / VISA_SPLIT} line {line}"
    if row["split"] not in _SPLITS or row["label"] not in _LABELS:
        raise DataError(f"{where}: split {row['split']!r} / label {row['label']!r} is not train|test / "
                        f"normal|anomaly. Fix: correct that row.")
    label = _LABELS[row["label"]]
    if label == ANOMALOUS and not row["mask"]:
        raise DataError(f"{where}: anomalous image {row['image']} has no mask. Fix: fill its mask column.")
    mask = root / row["mask"] if label == ANOMALOUS else None
    return Sample(root / row["image"], row["object"], label, "anomaly" if label else "good", mask, row["split"])


def _require_files(samples: list[Sample], split_file: Path) -> None:
    """A DataError naming the files the split lists but the folder lacks."""
    listed = [p for s in samples for p in (s.image_path, s.mask_path) if p is not None]
    absent = [p for p in listed if not p.is_file()]
    if absent:
        shown = ", ".join(str(p) for p in absent[:5])
        raise DataError(f"{len(absent)} file(s) listed in {split_file} are missing, e.g. {shown}. "
                        f"Fix: extract the complete VisA archive into {split_file.parent.parent}.")
