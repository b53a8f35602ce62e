"""Open a data set folder of any supported layout, detecting which one it is."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from nipad.data.class_tree import BTAD_NORMAL, MVTEC_NORMAL, class_folders, read_btad, read_mvtec
from nipad.data.dataset import Dataset
from nipad.data.files import require_dir
from nipad.data.visa import VISA_SPLIT, read_visa
from nipad.errors import ConfigError, DataError

READERS: dict[str, Callable[..., Dataset]] = {"visa": read_visa, "btad": read_btad, "mvtec": read_mvtec}
LAYOUT_HINTS = {
    "visa": f"visa ({VISA_SPLIT})",
    "btad": f"btad (01|02|03/train/{BTAD_NORMAL} with test/{BTAD_NORMAL}|ko)",
    "mvtec": f"mvtec (<class>/train/{MVTEC_NORMAL} or train/{MVTEC_NORMAL})",
}


def detect_layout(root: str | Path) -> str:
    """The layout of `root`: "visa", "btad" or "mvtec", tried in that order; a DataError naming them if none fits."""
    root = require_dir(root, "data set folder")
    if (root / VISA_SPLIT).is_file():
        return "visa"
    if class_folders(root, BTAD_NORMAL):
        return "btad"
    if class_folders(root, MVTEC_NORMAL):
        return "mvtec"
    raise DataError(
        f"{root} matches no known data set layout; tried {', '.join(LAYOUT_HINTS.values())}. Fix: point to the "
        f"data set root or a class folder, or read plain image folders with read_folder(normal_dir, abnormal_dir)."
    )


def open_dataset(
    root: str | Path, kind: str = "auto", classes: Sequence[str] | None = None, name: str | None = None
) -> Dataset:
    """The data set at `root` (`kind` "auto", "mvtec", "visa" or "btad"), restricted to `classes` if given.

    `name` (default: the layout kind) prefixes class names where `combine` finds clashes.
    """
    if kind != "auto" and kind not in READERS:
        raise ConfigError(f"unknown data set kind {kind!r}. Fix: use one of auto, {', '.join(READERS)}.")
    layout = detect_layout(root) if kind == "auto" else kind
    return READERS[layout](root, classes, name or layout)
