"""AnomalySD's masks: the foreground estimate and the IoU-filtered random rectangles of fine-tuning (section 4.1),
and the k x k grids of inference (section 4.2, "multi-scale masks"). A mask is 1 where the image is inpainted."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from scipy import ndimage
from scipy.spatial import cKDTree
from torch import Tensor

from nipad.models.anomalysd.threshold import otsu_threshold


def estimate_foreground(image: np.ndarray, min_contrast: float = 0.05) -> np.ndarray:
    """The object's foreground m_f (bool H x W) of a uint8 H x W x 3 image, from the image alone.

    The colours of a band along the border (1/32 of the side wide) of the lightly smoothed image stand for the
    background. A pixel is foreground when the distance from its colour to the nearest border colour (a KD-tree over
    up to 4096 sampled border pixels) exceeds both the Otsu threshold of these distances and `min_contrast` of the
    RGB cube's diagonal. Specks are removed with a 3 x 3 opening and holes filled. When almost nothing (< 0.5%) is
    left, no object stands out from the border, as for textures or objects filling the frame: the whole image is
    foreground.
    """
    h, w = image.shape[:2]
    smooth = ndimage.gaussian_filter(image.astype(np.float32), sigma=(max(1.0, h / 128), max(1.0, w / 128), 0))
    band = np.zeros((h, w), bool)
    b = max(1, min(h, w) // 32)
    band[:b], band[-b:], band[:, :b], band[:, -b:] = True, True, True, True
    border = smooth[band]
    if len(border) > 4096:
        border = border[np.random.default_rng(0).choice(len(border), 4096, replace=False)]
    distance = cKDTree(border).query(smooth.reshape(-1, 3))[0].reshape(h, w)
    fg = distance > max(otsu_threshold(distance), min_contrast * 255 * np.sqrt(3))
    fg = ndimage.binary_fill_holes(ndimage.binary_opening(fg, np.ones((3, 3), bool)))
    return fg if fg.mean() >= 0.005 else np.ones((h, w), bool)


def rectangle_iou(rects: np.ndarray, foreground: np.ndarray) -> np.ndarray:
    """IoU of each rectangle (n, 4) = (y0, x0, y1, x1), end-exclusive, with the bool foreground (summed-area table)."""
    table = np.pad(foreground.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    y0, x0, y1, x1 = rects.T
    inter = table[y1, x1] - table[y0, x1] - table[y1, x0] + table[y0, x0]
    union = (y1 - y0) * (x1 - x0) + int(foreground.sum()) - inter
    return inter / np.maximum(union, 1)


def random_rectangles(rng: np.random.Generator, foreground: np.ndarray, n: int, min_side: float = 0.125) -> np.ndarray:
    """`n` rectangles (y0, x0, y1, x1) with sides drawn from [min_side, 1] of the image's, each containing a random
    foreground pixel (shifted, not cropped, to stay inside the image), so every one overlaps the foreground."""
    h, w = foreground.shape
    ys, xs = np.nonzero(foreground)
    pick = rng.integers(len(ys), size=n)
    sides = []
    for length, centre in ((h, ys[pick]), (w, xs[pick])):
        side = rng.integers(max(1, round(min_side * length)), length + 1, size=n)
        start = np.clip(centre - side // 2, 0, length - side)
        sides.append((start, start + side))
    (y0, y1), (x0, x1) = sides
    return np.stack([y0, x0, y1, x1], axis=1)


def training_mask(foreground: np.ndarray, gammas: Sequence[float], rng: np.random.Generator,
                  candidates: int = 64) -> tuple[np.ndarray, float]:
    """A random rectangle m with IoU(m, m_f) > gamma, gamma drawn from `gammas` (paper: {0, 0.2, 0.5}); returns
    (bool mask H x W, the gamma it meets). When none of `candidates` rectangles passes (a thin object and gamma 0.5),
    the next smaller gamma of the set is tried, and gamma 0 always passes (every rectangle overlaps the foreground)."""
    if not foreground.any():
        foreground = np.ones_like(foreground, dtype=bool)
    drawn = float(gammas[int(rng.integers(len(gammas)))])
    rects = random_rectangles(rng, foreground, candidates)
    iou = rectangle_iou(rects, foreground)
    for gamma in sorted({g for g in gammas if g <= drawn} | {0.0}, reverse=True):
        passing = np.flatnonzero(iou > gamma)
        if passing.size:
            y0, x0, y1, x1 = rects[passing[0]]
            mask = np.zeros(foreground.shape, bool)
            mask[y0:y1, x0:x1] = True
            return mask, gamma
    raise AssertionError("unreachable: a rectangle containing a foreground pixel has IoU > 0")


def grid_masks(size: int, k: int, device: torch.device | str | None = None) -> Tensor:
    """The k x k masks M_ij^(k) of a size x size image, (k*k, 1, size, size) float, row-major; tile edges at
    floor(i * size / k), so the tiles cover every pixel exactly once whatever the size."""
    edges = [i * size // k for i in range(k + 1)]
    masks = torch.zeros(k * k, 1, size, size, device=device)
    for i in range(k):
        for j in range(k):
            masks[i * k + j, 0, edges[i]:edges[i + 1], edges[j]:edges[j + 1]] = 1.0
    return masks


def multiscale_masks(size: int, scales: Sequence[int], device: torch.device | str | None = None) -> list[Tensor]:
    """One grid per scale k of `scales` (paper: 1, 2, 4, 8): 85 masks at the paper's scales."""
    return [grid_masks(size, k, device) for k in scales]
