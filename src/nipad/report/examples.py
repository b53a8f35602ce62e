"""The report's example images: the normal images a class scores highest (false alarms waiting to happen) and the
anomalous ones it scores lowest (defects it hides), each as a small PNG of the photo beside its heatmap overlay with
the ground-truth outline."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nipad.data import load_image
from nipad.errors import DataError
from nipad.visualize import draw_outline, overlay_heatmap

THUMB_SIZE = 128
OUTLINE_COLOR = (255, 255, 255)
HEAT_ALPHA = 0.45
HEAT_RANGE = (0.01, 0.999)


@dataclass(frozen=True)
class Example:
    """One example to show: which image, its score, its rank in the class, and the PNG (None if unreadable)."""

    path: str
    score: float
    label: int
    png: bytes | None
    error: str | None = None


def hard_indices(scores: np.ndarray, labels: np.ndarray, k: int) -> tuple[list[int], list[int]]:
    """Indices of the `k` highest-scored normal images and of the `k` lowest-scored anomalous ones."""
    normal, anomalous = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    worst_normal = normal[np.argsort(-scores[normal], kind="stable")][:k]
    hidden_anomalous = anomalous[np.argsort(scores[anomalous], kind="stable")][:k]
    return worst_normal.tolist(), hidden_anomalous.tolist()


def heat_range(maps: list[np.ndarray]) -> tuple[float, float]:
    """The class's map values at the 1st and 99.9th percentile (every 4th pixel): one colour scale for all of a
    class's examples, so a cool normal image and a hot defect look different, and one stray pixel sets no scale."""
    sample = np.concatenate([m[::4, ::4].ravel() for m in maps]).astype(np.float64)
    lo, hi = np.quantile(sample, HEAT_RANGE)
    return float(lo), float(hi if hi > lo else lo + 1e-12)


def _png(rgb: np.ndarray) -> bytes:
    """Palette PNG (256 colours, dithered): a third the size of RGB for photos, and the report holds hundreds."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).quantize(colors=256).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if rgb.shape[:2] == size:
        return rgb
    return np.asarray(Image.fromarray(rgb).resize((size[1], size[0]), Image.Resampling.LANCZOS))


def example_image(path: str, anomaly_map: np.ndarray, mask: np.ndarray, heat: tuple[float, float],
                  thumb: int = THUMB_SIZE) -> bytes:
    """PNG of the photo (loaded at the map's size) and, beside it, the map over it with the mask's outline, both
    scaled so the longer side is `thumb` pixels. Raises DataError when the image cannot be read."""
    photo = load_image(path, anomaly_map.shape)
    lo, hi = heat
    overlay = overlay_heatmap(photo, np.clip((anomaly_map - lo) / (hi - lo), 0.0, 1.0), HEAT_ALPHA)
    scale = thumb / max(anomaly_map.shape)
    size = (max(1, round(anomaly_map.shape[0] * scale)), max(1, round(anomaly_map.shape[1] * scale)))
    overlay = _resize(overlay, size)
    small_mask = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((size[1], size[0]),
                                                                               Image.Resampling.NEAREST)) > 127
    if small_mask.any():
        overlay = draw_outline(overlay, small_mask, OUTLINE_COLOR, thickness=1)
    gap = np.full((size[0], 4, 3), 255, np.uint8)
    return _png(np.concatenate([_resize(photo, size), gap, overlay], axis=1))


def examples(paths: list[str], scores: np.ndarray, labels: np.ndarray, maps: list[np.ndarray],
             masks: list[np.ndarray], indices: list[int], heat: tuple[float, float]) -> list[Example]:
    """The chosen images as Examples; an image that can no longer be read is listed with the reason, not fatal."""
    out = []
    for i in indices:
        try:
            png, error = example_image(paths[i], maps[i], masks[i], heat), None
        except DataError as err:
            png, error = None, str(err)
        out.append(Example(str(Path(paths[i])), float(scores[i]), int(labels[i]), png, error))
    return out
