"""A validation set made from the training data alone, for choosing settings without the test split.

It holds each class's held-out normal training images (the calibration split, never trained on) and one
pseudo-anomalous copy of each with its mask, drawn with a seed of its own (so not the training draws), written as
PNG files in MVTec layout. Any model scores it as a test set (`nipad.engine.evaluate.run_test`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from nipad.data.image_io import load_image
from nipad.data.sample import ANOMALOUS, NORMAL, Sample
from nipad.engine.features import DecodedImages, texture_source
from nipad.synth import PseudoAnomaly

VALIDATION_SEED = 1_000_003  # far from the training seeds, so no validation anomaly repeats a training one


def pseudo_validation_set(held: Sequence[Sample], texture_samples: Sequence[Sample], image_size: int,
                          out_dir: str | Path, seed: int = VALIDATION_SEED) -> list[Sample]:
    """The held-out normal images and a pseudo-anomalous copy of each (defect type `pseudo`), written under
    `out_dir/<class>/`; textures come from `texture_samples` (the training images) as in training."""
    out_dir = Path(out_dir)
    pseudo = PseudoAnomaly(texture_source(None, DecodedImages([s.image_path for s in texture_samples], image_size)))
    samples: list[Sample] = []
    for i, sample in enumerate(held):
        image = load_image(sample.image_path, image_size)
        anomalous, mask = pseudo(image, np.random.default_rng([seed, i]))
        folder = out_dir / sample.class_name
        for sub in ("test/good", "test/pseudo", "ground_truth/pseudo"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        stem = f"{i:05d}"
        Image.fromarray(image).save(folder / "test/good" / f"{stem}.png")
        Image.fromarray(anomalous).save(folder / "test/pseudo" / f"{stem}.png")
        Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "ground_truth/pseudo" / f"{stem}_mask.png")
        samples.append(Sample(folder / "test/good" / f"{stem}.png", sample.class_name, NORMAL, split="test"))
        samples.append(Sample(folder / "test/pseudo" / f"{stem}.png", sample.class_name, ANOMALOUS, "pseudo",
                              folder / "ground_truth/pseudo" / f"{stem}_mask.png", "test"))
    return samples
