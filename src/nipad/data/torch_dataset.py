"""A torch Dataset over samples that yields uint8 images and float masks, and a collate that drops bad images.

Normalisation stays in the model, so images here are raw uint8 (3xHxW). A bad image (unreadable, truncated, not an
image) either raises its DataError (skip_bad=False) or, with skip_bad=True, warns and yields an item that carries
only its identity and the reason under "error"; `collate_skip_bad` drops such items and lists them in "skipped".
(The item is not a bare None, so that the reason and path survive DataLoader worker processes.)
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset, default_collate

from nipad.data.image_io import ImageSize, as_hw, load_image, load_mask
from nipad.data.sample import Sample
from nipad.errors import DataError

Item = dict[str, Any]


class ImageDataset(TorchDataset):
    """Items: image uint8 3xHxW, mask float 1xHxW (zeros without a mask), label, class_name, path, index."""

    def __init__(self, samples: Sequence[Sample], image_size: ImageSize, skip_bad: bool = True) -> None:
        self.samples = list(samples)
        self.image_size = as_hw(image_size)
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Item:
        s = self.samples[index]
        item: Item = {"label": int(s.label), "class_name": s.class_name, "path": str(s.image_path), "index": index}
        try:
            image = load_image(s.image_path, self.image_size)
            mask = load_mask(s.mask_path, self.image_size) if s.mask_path is not None else None
        except DataError as err:
            if not self.skip_bad:
                raise
            warnings.warn(f"skipping {s.image_path}: {err}", stacklevel=2)
            return {**item, "error": str(err)}
        item["image"] = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))  # numpy: ~10x faster here
        item["mask"] = _mask_tensor(mask, self.image_size)
        return item


def _mask_tensor(mask: np.ndarray | None, hw: tuple[int, int]) -> torch.Tensor:
    if mask is None:
        return torch.zeros((1, *hw), dtype=torch.float32)
    return torch.from_numpy(mask.astype(np.float32))[None]


def collate_skip_bad(batch: Sequence[Item | None]) -> Item:
    """Stack the good items (image BxCxHxW uint8, mask Bx1xHxW, label and index as tensors, class_name and path as
    lists) and add "skipped": [(path, reason)] for the bad ones. A batch with no good item has empty tensors."""
    good = [b for b in batch if b is not None and "error" not in b]
    skipped = [(b["path"], b["error"]) for b in batch if b is not None and "error" in b]
    if good:
        out = default_collate(good)
    else:
        out = {
            "image": torch.empty((0, 3, 0, 0), dtype=torch.uint8),
            "mask": torch.empty((0, 1, 0, 0), dtype=torch.float32),
            "label": torch.empty((0,), dtype=torch.int64),
            "class_name": [],
            "path": [],
            "index": torch.empty((0,), dtype=torch.int64),
        }
    out["skipped"] = skipped
    return out
