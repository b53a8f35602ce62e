"""Reader for a user's own folder: `DIR/good/` normal images and one sub-folder per defect type, no test split.

Layout of one product (class), named after DIR:

    DIR/good/            normal images (or DIR/normal/, DIR/ok/; one of them, any letter case)
    DIR/<type>/          defect images, one folder per defect type (any other sub-folder holding images; optional)
    DIR/masks/<type>/    optional masks, paired by stem: <stem>.png or <stem>_mask.png (any image extension);
                         DIR/ground_truth/<type>/<stem>_mask.png (MVTec's naming) works too, and so does a flat
                         DIR/masks/<stem>.png when masks/ has no sub-folders

A folder of such folders (`DIR/<product>/good/...`) is one class per product. There is no test split, so a fixed
share of each product's normal images (HOLD_OUT_SHARE, at least one when there are two or more, never all) is held
out as test normals and never trains; the defect images are the test anomalies. Which images are held out depends
only on their file names and HOLD_OUT_SEED (ranked by a SHA-256 hash of seed and name): the same on every run and
machine, wherever the folder lies, and unchanged for the images already there when a few are added.

A product with masks needs one for every defect image; one without any mask has image labels only (no pixel
metrics). MVTec, VisA and BTAD trees are detected before this layout (`nipad.data.open`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path

from nipad.data.checks import check_mask_sizes
from nipad.data.dataset import Dataset, pick_classes, sort_samples
from nipad.data.files import IMAGE_EXTENSIONS, index_by_stem, list_images, match_mask, require_dir, subfolders
from nipad.data.sample import ANOMALOUS, NORMAL, Sample
from nipad.errors import ConfigError, DataError

NORMAL_FOLDERS = ("good", "normal", "ok")
MASK_FOLDERS = ("masks", "mask", "ground_truth")
SPLIT_FOLDERS = ("train", "test")  # an MVTec-style split: never a product or a defect type of this layout
HOLD_OUT_SHARE = 0.2
HOLD_OUT_SEED = 0
LAYOUT = "DIR/good/ (or normal/, ok/) with normal images, other sub-folders one defect type each, optional " \
         "masks/<type>/<stem>.png; or DIR/<product>/good/..."


def normal_folder(folder: Path) -> Path | None:
    """The normal-image folder of `folder` (good/, normal/ or ok/, any case), None if it has none; a DataError if
    it has several, since the others would read as defect types."""
    found = [d for d in subfolders(folder) if d.name.lower() in NORMAL_FOLDERS]
    if len(found) > 1:
        raise DataError(f"{folder} has several normal-image folders ({', '.join(d.name + '/' for d in found)}). "
                        f"Fix: keep all normal images in one of them.")
    return found[0] if found else None


def plain_folders(root: Path) -> dict[str, Path]:
    """Class name -> product folder: ROOT itself if it has good/ (normal/, ok/), else its sub-folders that have one
    (train/ and test/ excepted: those belong to an MVTec-style class folder)."""
    if normal_folder(root) is not None:
        return {root.resolve().name: root}
    return {d.name: d for d in subfolders(root)
            if d.name.lower() not in SPLIT_FOLDERS and normal_folder(d) is not None}


def held_out_normals(images: Sequence[Path], share: float = HOLD_OUT_SHARE, seed: int = HOLD_OUT_SEED) -> list[Path]:
    """The normal images held out for testing, sorted: round(share * n) of the n images (halves round up), at least
    one when n >= 2 and never all; the images ranked first by SHA-256 of "<seed>:<file name>"."""
    n = len(images)
    count = min(max(math.floor(share * n + 0.5), 1), n - 1) if n >= 2 and share > 0 else 0
    ranked = sorted(images, key=lambda p: (hashlib.sha256(f"{seed}:{p.name}".encode()).hexdigest(), p.name))
    return sorted(ranked[:count])


def read_plain(
    root: str | Path,
    classes: Sequence[str] | None = None,
    name: str = "folder",
    share: float = HOLD_OUT_SHARE,
    seed: int = HOLD_OUT_SEED,
) -> Dataset:
    """The products under `root` (one folder, or a folder of them; see the module doc), restricted to `classes`.

    `share` of each product's normal images, chosen by `seed`, is held out as test normals; the Dataset's notes say
    how many per class, and what else a user should know (no defects, no masks, folders without images).
    """
    root = require_dir(root, "data set folder")
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"hold-out share {share} is outside [0, 1). Fix: give the share of normal images to test.")
    folders = plain_folders(root)
    if not folders:
        raise DataError(f"no good/, normal/ or ok/ folder in {root} or its sub-folders. Fix: put the normal images "
                        f"in {root / 'good'} (defect images in a folder per defect type, e.g. {root / 'bad'}), or "
                        f"one such folder per product in {root}.")
    train: list[Sample] = []
    test: list[Sample] = []
    notes: dict[str, tuple[str, ...]] = {}
    if len(folders) > 1 or root not in folders.values():
        skipped = [d.name for d in subfolders(root) if d.name not in folders]
        if skipped:
            notes[""] = (f"not read (no good/, normal/ or ok/ inside): {', '.join(d + '/' for d in skipped)}",)
    for class_name in pick_classes(list(folders), classes, root):
        class_train, class_test, notes[class_name] = _read_product(folders[class_name], class_name, share, seed)
        train += class_train
        test += class_test
    check_mask_sizes(test)
    return Dataset(name=name, root=root, train=sort_samples(train), test=sort_samples(test), notes=notes)


def _read_product(folder: Path, class_name: str, share: float, seed: int
                  ) -> tuple[list[Sample], list[Sample], tuple[str, ...]]:
    """Train and test samples of one product folder, and the notes `nipad data` prints about it."""
    normal_dir = normal_folder(folder)
    assert normal_dir is not None  # plain_folders picked it for having one
    splits = [d.name + "/" for d in subfolders(folder) if d.name.lower() in SPLIT_FOLDERS]
    if splits:
        raise DataError(f"{folder} has both {normal_dir.name}/ and {', '.join(splits)}, so it is neither a plain "
                        f"folder nor an MVTec tree. Fix: use {normal_dir.name}/ plus one folder per defect type, or "
                        f"MVTec's train/good/ plus test/<type>/.")
    normals = list_images(normal_dir)
    if not normals:
        raise DataError(f"no images in {normal_dir}: expected the normal (defect-free) images of {class_name!r} "
                        f"there ({', '.join(sorted(IMAGE_EXTENSIONS))}). Fix: put them there.")
    held = held_out_normals(normals, share, seed)
    train = [Sample(p, class_name, NORMAL) for p in sorted(set(normals) - set(held))]
    test = [Sample(p, class_name, NORMAL, "good", None, "test") for p in held]
    if held:
        notes = [f"{len(held)} of {len(normals)} images in {normal_dir.name}/ held out as test normals (no test "
                 f"split: {100 * share:g}%, seed {seed}); they never train"]
    else:
        notes = [f"all {len(normals)} image(s) in {normal_dir.name}/ train, none held out, so the test has no normal "
                 f"images and no image AUROC. Fix: add normal images"]
    mask_roots = [d for d in subfolders(folder) if d.name.lower() in MASK_FOLDERS]
    empty = []
    for type_dir in subfolders(folder):
        if type_dir == normal_dir or type_dir in mask_roots:
            continue
        images = list_images(type_dir)
        if not images:
            empty.append(type_dir.name + "/")
            continue
        masks = index_by_stem([m for r in mask_roots for m in _mask_files(r, type_dir.name)])
        test += [Sample(p, class_name, ANOMALOUS, type_dir.name, match_mask(masks, p.stem), "test") for p in images]
    defects = [s for s in test if s.is_anomalous]
    _require_all_masks_or_none(defects, folder, mask_roots)
    if not defects:
        notes.append(f"no defect images: the test has normal images only (add a folder per defect type, e.g. "
                     f"{folder / 'bad'})")
    elif not any(s.mask_path for s in defects):
        notes.append("no masks: image labels only, no pixel metrics")
    if empty:
        notes.append(f"not read (no images inside): {', '.join(empty)}")
    return train, test, tuple(notes)


def _mask_files(mask_root: Path, defect: str) -> list[Path]:
    """Masks of defect type `defect` under `mask_root`: those in `<mask_root>/<defect>/`, or, when `mask_root` has
    no sub-folders, those directly in it."""
    if subfolders(mask_root):
        return list_images(mask_root / defect)
    return list_images(mask_root)


def _require_all_masks_or_none(defects: list[Sample], folder: Path, mask_roots: list[Path]) -> None:
    """A DataError if some but not all defect images of a product have a mask: pixel metrics would count the
    unmasked defects as defect-free."""
    missing = [s for s in defects if s.mask_path is None]
    if not missing or len(missing) == len(defects):
        return
    first = missing[0]
    if not mask_roots:
        where = folder / "masks" / first.defect_type
    else:
        where = mask_roots[0] / first.defect_type if subfolders(mask_roots[0]) else mask_roots[0]
    stem = first.image_path.stem
    raise DataError(f"{len(defects) - len(missing)} of the {len(defects)} defect images in {folder} have a mask, "
                    f"{len(missing)} without one, e.g. {first.image_path}: expected {where / (stem + '.png')} or "
                    f"{where / (stem + '_mask.png')}. Fix: add the missing masks, or move the masks away to test on "
                    f"image labels only.")
