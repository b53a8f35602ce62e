"""A user's plain folder (good/ + bad/, no test split, no masks) through the command line: data, train, test."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from nipad.cli.main import main


def _plain_folder(root: Path, n_good: int = 10, n_bad: int = 3, size: int = 64) -> Path:
    """root/good/ striped images and root/bad/ copies with a red square, seeded."""
    rng = np.random.default_rng(0)
    xx = np.mgrid[0:size, 0:size][1]
    for folder, n in (("good", n_good), ("bad", n_bad)):
        (root / folder).mkdir(parents=True)
        for i in range(n):
            image = np.clip(128 + 60 * np.sin(xx / 3.0 + rng.uniform(0, 6.3))[..., None]
                            + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
            if folder == "bad":
                y, x = rng.integers(0, size - 16, 2)
                image[y:y + 16, x:x + 16] = (250, 20, 20)
            Image.fromarray(image).save(root / folder / f"{i:03d}.png")
    return root


def test_plain_folder_data_train_and_test(tmp_path, capsys):
    data, run = _plain_folder(tmp_path / "tiles"), tmp_path / "run"
    assert main(["data", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "tiles: bad 3 (0)" in out and "2 of 10 images in good/ held out as test normals" in out
    assert main(["train", "--data", str(data), "--model", "patchcore", "--out", str(run), "--image-size", "64"]) == 0
    assert main(["test", str(run), "--data", str(data), "--json", str(tmp_path / "m.json")]) == 0
    results = json.loads((tmp_path / "m.json").read_text())
    assert results["n_images"]["tiles"] == {"normal": 2, "anomalous": 3}
    assert results["per_class"]["tiles"]["pixel_auroc"] is None  # no masks: image labels only
