"""Reader for plain folders: one of normal images, optionally one of anomalous images and one of their masks."""

from __future__ import annotations

import random
from pathlib import Path

from nipad.data.checks import check_mask_sizes
from nipad.data.dataset import Dataset, sort_samples
from nipad.data.files import index_by_stem, list_images, match_mask, require_dir
from nipad.data.sample import ANOMALOUS, NORMAL, Sample
from nipad.errors import ConfigError, DataError


def read_folder(
    normal_dir: str | Path,
    abnormal_dir: str | Path | None = None,
    mask_dir: str | Path | None = None,
    class_name: str | None = None,
    test_split: float = 0.2,
    seed: int = 0,
) -> Dataset:
    """One class from plain folders.

    With `abnormal_dir`, a `test_split` share of the normal images (drawn with `seed`, at least one left for
    training) becomes the normal test set; without it every normal image trains. Masks in `mask_dir` match anomalous
    images by stem (`<stem>.png` or `<stem>_mask.png`, any image extension). `class_name` defaults to the name of
    the folder holding `normal_dir`.
    """
    normal_dir = require_dir(normal_dir, "normal image folder")
    if not 0.0 <= test_split < 1.0:
        raise ConfigError(f"test_split={test_split} is outside [0, 1). Fix: give the share of normal images to test.")
    if mask_dir is not None and abnormal_dir is None:
        raise ConfigError("mask_dir was given without abnormal_dir. Fix: also give the folder of anomalous images.")
    class_name = class_name or normal_dir.resolve().parent.name or normal_dir.resolve().name
    normals = list_images(normal_dir)
    if not normals:
        raise DataError(f"no images in {normal_dir}. Fix: put the normal (defect-free) images there.")
    held_out = _hold_out(normals, test_split, seed) if abnormal_dir is not None else set()
    train = [Sample(p, class_name, NORMAL) for p in normals if p not in held_out]
    test = [Sample(p, class_name, NORMAL, "good", None, "test") for p in sorted(held_out)]
    if abnormal_dir is not None:
        test += _anomalous(require_dir(abnormal_dir, "anomalous image folder"), mask_dir, class_name)
    check_mask_sizes(test)
    return Dataset(name="folder", root=normal_dir.parent, train=sort_samples(train), test=sort_samples(test))


def _hold_out(normals: list[Path], test_split: float, seed: int) -> set[Path]:
    """round(test_split * n) normal images, drawn with `seed`, leaving at least one for training."""
    count = min(round(test_split * len(normals)), len(normals) - 1)
    return set(random.Random(seed).sample(normals, count))


def _anomalous(abnormal_dir: Path, mask_dir: str | Path | None, class_name: str) -> list[Sample]:
    images = list_images(abnormal_dir)
    if not images:
        raise DataError(f"no images in {abnormal_dir}. Fix: put the anomalous images there or leave abnormal_dir out.")
    if mask_dir is None:
        return [Sample(p, class_name, ANOMALOUS, "anomaly", None, "test") for p in images]
    mask_dir = require_dir(mask_dir, "mask folder")
    masks = index_by_stem(list_images(mask_dir))
    samples = []
    for image in images:
        mask = match_mask(masks, image.stem)
        if mask is None:
            raise DataError(f"no mask for anomalous image {image}: expected {mask_dir / (image.stem + '.png')} or "
                            f"{mask_dir / (image.stem + '_mask.png')}. Fix: add the mask or remove the image.")
        samples.append(Sample(image, class_name, ANOMALOUS, "anomaly", mask, "test"))
    return samples
