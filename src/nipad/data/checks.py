"""Consistency checks every reader runs before handing a data set out."""

from __future__ import annotations

from collections.abc import Iterable

from nipad.data.image_io import image_header_size
from nipad.data.sample import Sample
from nipad.errors import DataError


def require_train_images(class_name: str, train: list[Sample], where: str) -> None:
    """A DataError if `class_name` has no training image; `where` says where they were looked for."""
    if not any(s.class_name == class_name for s in train):
        raise DataError(
            f"class {class_name!r} has no training images (looked in {where}). "
            f"Fix: add normal images there or leave the class out."
        )


def check_mask_sizes(samples: Iterable[Sample]) -> None:
    """A DataError for the first anomalous sample whose mask size differs from its image size.

    Only file headers are read (no pixel decoding), so this stays cheap on large sets; a file whose header cannot be
    read is left to the image loader, which reports it (or skips it) when the image is used.
    """
    for s in samples:
        if not (s.is_anomalous and s.mask_path is not None):
            continue
        image_size, mask_size = image_header_size(s.image_path), image_header_size(s.mask_path)
        if image_size and mask_size and image_size != mask_size:
            raise DataError(
                f"mask {s.mask_path} is {mask_size[0]}x{mask_size[1]} but its image {s.image_path} is "
                f"{image_size[0]}x{image_size[1]} (width x height). Fix: give the mask the image's size."
            )
