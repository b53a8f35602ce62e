"""Builders of tiny data set layouts in tmp_path for the data tests."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image


def write_image(path: Path, size: tuple[int, int] = (8, 6), mode: str = "RGB", value: int = 128) -> Path:
    """A small constant image of `size` (width, height) and `mode` at `path`, format from the extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bands = len(Image.new(mode, (1, 1)).getbands())
    Image.new(mode, size, value if bands == 1 else (value,) * bands).save(path)
    return path


def write_mask(path: Path, size: tuple[int, int] = (8, 6)) -> Path:
    """A 0/255 mask whose left half is foreground."""
    path.parent.mkdir(parents=True, exist_ok=True)
    a = np.zeros((size[1], size[0]), np.uint8)
    a[:, : size[0] // 2] = 255
    Image.fromarray(a).save(path)
    return path


def make_tree(
    root: Path,
    classes: dict[str, dict[str, int]],
    normal: str = "good",
    masks: bool = True,
    mask_name: str = "{stem}_mask.png",
) -> Path:
    """An MVTec-style tree: classes maps class -> {"train": n, "<test type>": n}; masks for every non-normal type."""
    for cls, counts in classes.items():
        for kind, n in counts.items():
            folder = root / cls / ("train/" + normal if kind == "train" else "test/" + kind)
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                write_image(folder / f"{i:03d}.png")
                if masks and kind not in ("train", normal):
                    write_mask(root / cls / "ground_truth" / kind / mask_name.format(stem=f"{i:03d}"))
    return root


def make_visa(root: Path, objects: dict[str, tuple[int, int, int]]) -> Path:
    """A VisA folder: objects maps name -> (train normals, test normals, test anomalies), with split_csv/1cls.csv."""
    rows = ["object,split,label,image,mask"]
    for obj, (n_train, n_test, n_bad) in objects.items():
        for i in range(n_train + n_test):
            rel = f"{obj}/Data/Images/Normal/{i:04d}.JPG"
            write_image(root / rel)
            rows.append(f"{obj},{'train' if i < n_train else 'test'},normal,{rel},")
        for i in range(n_bad):
            rel, mrel = f"{obj}/Data/Images/Anomaly/{i:03d}.JPG", f"{obj}/Data/Masks/Anomaly/{i:03d}.png"
            write_image(root / rel)
            write_mask(root / mrel)
            rows.append(f"{obj},test,anomaly,{rel},{mrel}")
    (root / "split_csv").mkdir(parents=True)
    (root / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def mvtec_root(tmp_path: Path) -> Path:
    """Two classes: bottle (3 train, 2 good, 2 broken, 1 crack), cable (2 train, 1 good, 1 cut)."""
    return make_tree(
        tmp_path / "mvtec",
        {"bottle": {"train": 3, "good": 2, "broken": 2, "crack": 1}, "cable": {"train": 2, "good": 1, "cut": 1}},
    )


@pytest.fixture
def build() -> SimpleNamespace:
    """The builders above, for tests (conftest modules are not importable by name)."""
    return SimpleNamespace(image=write_image, mask=write_mask, tree=make_tree, visa=make_visa)
