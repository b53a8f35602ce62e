"""nipad.data: data set readers (MVTec AD, VisA, BTAD, plain folders), image loading and the torch Dataset.

The torch Dataset (`ImageDataset`, `collate_skip_bad`) is imported on first use, so that reading a data set (`nipad
data`) imports no torch."""

from typing import Any

from nipad.data.class_tree import read_btad, read_mvtec
from nipad.data.combine import combine
from nipad.data.dataset import ClassCounts, Dataset, select_classes
from nipad.data.files import IMAGE_EXTENSIONS
from nipad.data.folder import read_folder
from nipad.data.image_io import decode_image_bytes, load_image, load_mask
from nipad.data.kshot import kshot
from nipad.data.open import detect_layout, open_dataset
from nipad.data.sample import ANOMALOUS, NORMAL, Sample
from nipad.data.visa import read_visa

__all__ = [
    "ANOMALOUS",
    "IMAGE_EXTENSIONS",
    "NORMAL",
    "ClassCounts",
    "Dataset",
    "ImageDataset",
    "Sample",
    "collate_skip_bad",
    "combine",
    "decode_image_bytes",
    "detect_layout",
    "kshot",
    "load_image",
    "load_mask",
    "open_dataset",
    "read_btad",
    "read_folder",
    "read_mvtec",
    "read_visa",
    "select_classes",
]


_LAZY = {"ImageDataset", "collate_skip_bad"}  # from nipad.data.torch_dataset, which imports torch


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from nipad.data import torch_dataset

        return getattr(torch_dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
