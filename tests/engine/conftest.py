"""Fixtures of the engine tests: a folder of image files of several kinds, for finding inputs and predicting."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _save(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def images(tiny_mvtec, tmp_path) -> Path:
    """Good images of several sizes (two called part.png), a truncated PNG, a text file named .jpg, a .txt file."""
    root = tmp_path / "imgs"
    blob = np.asarray(Image.open(tiny_mvtec / "dots/test/blob/000.png"))
    good = np.asarray(Image.open(tiny_mvtec / "stripes/test/good/000.png"))
    _save(root / "a/part.png", np.asarray(Image.fromarray(blob).resize((96, 48))))
    _save(root / "b/part.png", good)
    _save(root / "b/deep/x.bmp", np.asarray(Image.fromarray(good).resize((40, 72))))
    png = (root / "b/part.png").read_bytes()
    (root / "a/truncated.png").write_bytes(png[: len(png) // 3])
    (root / "a/notes.jpg").write_text("not an image")
    (root / "a/readme.txt").write_text("ignored by folder search")
    (root / ".hidden").mkdir()
    _save(root / ".hidden/y.png", good)
    return root
