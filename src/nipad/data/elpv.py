"""The ELPV solar-cell data set from the PyPI package `elpv-dataset`: the built-in demo's real data.

Electroluminescence images of solar cells, 300x300 grayscale; `labels.csv` gives each cell's defect probability
and type (mono- or polycrystalline: the two classes of one unified model). Probability 0 is normal, 1.0 anomalous;
cells in between are left out. Image labels only, so there are no masks and no pixel metrics.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from nipad.data.dataset import Dataset
from nipad.data.sample import ANOMALOUS, NORMAL, Sample
from nipad.errors import DataError


def elpv_root() -> Path:
    """Folder of the installed package's labels.csv and images/."""
    try:
        import elpv_dataset
    except ImportError as err:
        raise DataError(
            "the ELPV data set is not installed; run `scripts/setup.sh` (it installs elpv-dataset)"
        ) from err
    return Path(elpv_dataset.__file__).parent / "data"


def read_elpv(
    root: Path | None = None, n_train: int | None = None, n_test: int | None = None, seed: int = 0
) -> Dataset:
    """Per class, `n_train` normal cells for training and `n_test` normal + `n_test` anomalous cells for testing
    (all remaining cells when None), drawn with `seed`; the train and test cells never overlap."""
    root = root or elpv_root()
    labels = root / "labels.csv"
    if not labels.is_file():
        raise DataError(f"{labels} is missing; reinstall elpv-dataset")
    rows: dict[tuple[str, int], list[Path]] = {}
    with open(labels, encoding="utf-8") as fh:
        for path, prob, kind in csv.reader(fh, delimiter=" ", skipinitialspace=True):
            p = float(prob)
            if p in (0.0, 1.0):
                rows.setdefault((kind, ANOMALOUS if p == 1.0 else NORMAL), []).append(root / path)
    train: list[Sample] = []
    test: list[Sample] = []
    for kind in sorted({k for k, _ in rows}):
        rng = np.random.default_rng([seed, len(kind)])
        normal = [rows[(kind, NORMAL)][i] for i in rng.permutation(len(rows[(kind, NORMAL)]))]
        bad = [rows[(kind, ANOMALOUS)][i] for i in rng.permutation(len(rows[(kind, ANOMALOUS)]))]
        k_train = len(normal) // 2 if n_train is None else min(n_train, len(normal) - 1)
        test_normal = normal[k_train:] if n_test is None else normal[k_train:k_train + n_test]
        train += [Sample(p, kind, NORMAL) for p in sorted(normal[:k_train])]
        test += [Sample(p, kind, NORMAL, split="test") for p in sorted(test_normal)]
        test += [Sample(p, kind, ANOMALOUS, "defect", split="test") for p in sorted(bad[:n_test] if n_test else bad)]
    return Dataset("elpv", root, train, test)
