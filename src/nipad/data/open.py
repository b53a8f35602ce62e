"""Open a data set folder of any supported layout, detecting which one it is."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from nipad.data.class_tree import BTAD_NORMAL, MVTEC_NORMAL, class_folders, read_btad, read_mvtec
from nipad.data.dataset import Dataset
from nipad.data.files import list_images, require_dir
from nipad.data.plain_folder import LAYOUT as FOLDER_LAYOUT, NORMAL_FOLDERS, plain_folders, read_plain
from nipad.data.visa import VISA_SPLIT, read_visa
from nipad.errors import ConfigError, DataError

READERS: dict[str, Callable[..., Dataset]] = {
    "visa": read_visa, "btad": read_btad, "mvtec": read_mvtec, "folder": read_plain,
}
LAYOUT_HINTS = {
    "visa": f"visa ({VISA_SPLIT})",
    "btad": f"btad (01|02|03/train/{BTAD_NORMAL} with test/{BTAD_NORMAL}|ko)",
    "mvtec": f"mvtec (<class>/train/{MVTEC_NORMAL} or train/{MVTEC_NORMAL})",
    "folder": f"folder ({FOLDER_LAYOUT})",
}


def detect_layout(root: str | Path) -> str:
    """The layout of `root`: "visa", "btad", "mvtec" or "folder" (a user's own good/ + defect folders), tried in
    that order; a DataError naming them if none fits, or if `root` mixes class trees with plain folders."""
    root = require_dir(root, "data set folder")
    if (root / VISA_SPLIT).is_file():
        return "visa"
    for layout, normal in (("btad", BTAD_NORMAL), ("mvtec", MVTEC_NORMAL)):
        trees = class_folders(root, normal)
        if trees:
            _refuse_mixed(root, layout, trees)
            return layout
    if plain_folders(root):
        return "folder"
    raise DataError(f"{root} matches no known data set layout; tried {', '.join(LAYOUT_HINTS.values())}. "
                    f"{_fix_for(root)}")


def _fix_for(root: Path) -> str:
    """What the user most likely meant, for the no-layout error."""
    loose = list_images(root)
    if loose and root.name.lower() in NORMAL_FOLDERS:
        return (f"It holds {len(loose)} image(s) and is itself a normal-image folder. Fix: point --data to the "
                f"folder above it, {root.resolve().parent}.")
    if loose:
        return (f"It holds {len(loose)} image(s) directly. Fix: move the normal images into {root / 'good'} and the "
                f"defect images into a folder per defect type, e.g. {root / 'bad'}.")
    return (f"It has no good/, normal/ or ok/ folder with normal images, here or one level down. Fix: point to the "
            f"data set root or a class folder, or put your normal images in {root / 'good'}.")


def _refuse_mixed(root: Path, layout: str, trees: dict[str, Path]) -> None:
    """A DataError if `root` also holds products of the plain-folder layout, which reading it as `layout` would
    silently leave out."""
    if root in trees.values():
        return
    plain = sorted(set(plain_folders(root)) - set(trees))
    if plain:
        raise DataError(f"{root} mixes {layout} class folders ({', '.join(sorted(trees))}) with plain good/ folders "
                        f"({', '.join(plain)}). Fix: give each layout its own --data folder.")


def open_dataset(
    root: str | Path, kind: str = "auto", classes: Sequence[str] | None = None, name: str | None = None
) -> Dataset:
    """The data set at `root` (`kind` "auto", "mvtec", "visa", "btad" or "folder"), restricted to `classes` if given.

    `name` (default: the layout kind) prefixes class names where `combine` finds clashes.
    """
    if kind != "auto" and kind not in READERS:
        raise ConfigError(f"unknown data set kind {kind!r}. Fix: use one of auto, {', '.join(READERS)}.")
    layout = detect_layout(root) if kind == "auto" else kind
    return READERS[layout](root, classes, name or layout)
