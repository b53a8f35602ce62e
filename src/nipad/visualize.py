"""Inspection images: an anomaly map drawn as a colormap over the photo, and the outline of the predicted defect.

Pure functions on uint8 HxWx3 arrays. Colours come from matplotlib's named colormaps (`jet`, `inferno`, ...: the
ones anomalib users know) through a 256-entry lookup table, so a 12-megapixel map costs one uint8 gather rather
than a float RGBA array from the colormap call.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from matplotlib import colormaps
from scipy import ndimage

from nipad.errors import ConfigError

RED = (255, 0, 0)


@lru_cache(maxsize=8)
def colormap_lut(name: str) -> np.ndarray:
    """The 256 colours of matplotlib colormap `name` as uint8 (256, 3)."""
    if name not in colormaps:
        raise ConfigError(f"unknown colormap {name!r}; use a matplotlib colormap name such as jet, inferno or viridis")
    cmap = colormaps[name].resampled(256)
    return cmap(np.arange(256), bytes=True)[:, :3]


def colorize(values: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """A float HxW map with values in [0, 1] (clipped) as uint8 HxWx3 colours, binned as matplotlib bins them."""
    index = np.minimum(np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * 256, 255).astype(np.uint8)
    return colormap_lut(colormap)[index]


def overlay_heatmap(image: np.ndarray, anomaly_map: np.ndarray, alpha: float = 0.4,
                    colormap: str = "jet") -> np.ndarray:
    """`image` (uint8 HxWx3) blended with the colormapped `anomaly_map` (float HxW in [0, 1]) at opacity `alpha`."""
    _check_image(image)
    if anomaly_map.shape != image.shape[:2]:
        raise ConfigError(f"anomaly map {anomaly_map.shape} and image {image.shape[:2]} differ in size; upsample "
                          f"the map to the image first")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"overlay alpha must be in [0, 1], got {alpha}")
    heat = colorize(anomaly_map, colormap).astype(np.float32)
    return np.round((1.0 - alpha) * image.astype(np.float32) + alpha * heat).astype(np.uint8)


def draw_outline(image: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = RED,
                 thickness: int | None = None) -> np.ndarray:
    """A copy of `image` with the boundary of `mask` (bool HxW) painted `color`, `thickness` pixels wide inside the
    region (default: about 1/300 of the longer side, at least 1, so it stays visible on large photos)."""
    _check_image(image)
    if mask.shape != image.shape[:2]:
        raise ConfigError(f"mask {mask.shape} and image {image.shape[:2]} differ in size")
    width = thickness if thickness is not None else max(1, round(max(mask.shape) / 300))
    mask = mask.astype(bool)
    edge = mask & ~ndimage.binary_erosion(mask, iterations=width, border_value=0)
    out = image.copy()
    out[edge] = np.asarray(color, dtype=np.uint8)
    return out


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ConfigError(f"expected a uint8 HxWx3 image, got {image.dtype} {image.shape}")
