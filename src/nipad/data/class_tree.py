"""Readers for folder-tree layouts: MVTec AD and BTAD.

Both are `ROOT/<class>/{train/<normal>, test/<normal|defect>, ground_truth/<defect>/<mask>}`; they differ only in the
name of the normal folder ("good" for MVTec, "ok" for BTAD). ROOT may also be a single class folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nipad.data.checks import check_mask_sizes, require_train_images
from nipad.data.dataset import Dataset, pick_classes, sort_samples
from nipad.data.files import index_by_stem, list_images, match_mask, require_dir, subfolders
from nipad.data.sample import ANOMALOUS, NORMAL, Sample
from nipad.errors import DataError

MVTEC_NORMAL = "good"
BTAD_NORMAL = "ok"


def read_mvtec(root: str | Path, classes: Sequence[str] | None = None, name: str = "mvtec") -> Dataset:
    """An MVTec AD tree (`ROOT/<class>/train/good`, masks `ground_truth/<type>/<stem>_mask.png`) or one class folder."""
    return read_class_tree(root, MVTEC_NORMAL, classes, name)


def read_btad(root: str | Path, classes: Sequence[str] | None = None, name: str = "btad") -> Dataset:
    """A BTAD tree (`ROOT/01|02|03/train/ok`, `test/ok|ko`, masks `ground_truth/ko/<stem>.png|bmp`) or one class."""
    return read_class_tree(root, BTAD_NORMAL, classes, name)


def class_folders(root: Path, normal: str) -> dict[str, Path]:
    """Class name -> class folder: ROOT itself if it has train/<normal>, else its sub-folders that have one."""
    if (root / "train" / normal).is_dir():
        return {root.resolve().name: root}
    return {d.name: d for d in subfolders(root) if (d / "train" / normal).is_dir()}


def read_class_tree(root: str | Path, normal: str, classes: Sequence[str] | None, name: str) -> Dataset:
    """Samples of every class folder under `root` whose normal folder is named `normal`.

    Masks are required for every anomalous test image as soon as any class has a ground_truth folder; without any
    ground_truth folder the data set has image labels only and masks are None.
    """
    root = require_dir(root, "data set folder")
    folders = class_folders(root, normal)
    if not folders:
        raise DataError(
            f"no class folder with train/{normal} found in {root}. Fix: point to the data set root "
            f"(holding <class>/train/{normal}) or to one class folder (holding train/{normal})."
        )
    has_masks = any((d / "ground_truth").is_dir() for d in folders.values())
    train: list[Sample] = []
    test: list[Sample] = []
    for class_name in pick_classes(list(folders), classes, root):
        folder = folders[class_name]
        train += [Sample(p, class_name, NORMAL) for p in list_images(folder / "train" / normal)]
        require_train_images(class_name, train, str(folder / "train" / normal))
        test += _read_test(folder, class_name, normal, has_masks)
    check_mask_sizes(test)
    return Dataset(name=name, root=root, train=sort_samples(train), test=sort_samples(test))


def _read_test(folder: Path, class_name: str, normal: str, has_masks: bool) -> list[Sample]:
    samples: list[Sample] = []
    for type_dir in subfolders(folder / "test"):
        defect = type_dir.name
        if defect == normal:
            samples += [Sample(p, class_name, NORMAL, "good", None, "test") for p in list_images(type_dir)]
            continue
        mask_dir = folder / "ground_truth" / defect
        masks = index_by_stem(list_images(mask_dir))
        for image in list_images(type_dir):
            mask = match_mask(masks, image.stem) if has_masks else None
            if has_masks and mask is None:
                raise DataError(
                    f"no mask for anomalous image {image}: expected {mask_dir / (image.stem + '_mask.png')} "
                    f"(or {image.stem}.<ext>). Fix: add the mask, or remove the image."
                )
            samples.append(Sample(image, class_name, ANOMALOUS, defect, mask, "test"))
    return samples
