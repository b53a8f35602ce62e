"""Shared checks and conversions for the synth functions (uint8 HxWx3 RGB numpy <-> PIL)."""

import numpy as np
from PIL import Image


def check_rgb(image: np.ndarray, name: str = "image") -> None:
    """Raise ValueError unless `image` is a uint8 HxWx3 array with H, W >= 1."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{type(image).__name__} {getattr(image, 'dtype', '')} {getattr(image, 'shape', '')}"
        raise ValueError(f"{name} must be a uint8 HxWx3 RGB numpy array, got {got}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"{name} must have at least one pixel, got shape {image.shape}")


def to_pil(image: np.ndarray) -> Image.Image:
    """Wrap a uint8 HxWx3 array as an RGB PIL image."""
    return Image.fromarray(image)


def to_array(image: Image.Image) -> np.ndarray:
    """Turn a PIL image into a uint8 HxWx3 RGB array."""
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 HxWx3 array to `size` = (H, W) with bilinear interpolation."""
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    return to_array(to_pil(image).resize((width, height), Image.Resampling.BILINEAR))
