"""AUPRO as in MVTec AD's official evaluation: area under the per-region-overlap curve up to an FPR limit, / limit.

Regions are the 8-connected components of each ground-truth mask (scipy.ndimage.label, 3x3 ones structure).
At each distinct threshold, PRO is the mean over all regions of the class of the fraction of the region's pixels
scoring >= threshold, and FPR is over all ground-truth-negative pixels. The exact curve (through (0, 0) and (1, 1))
is cut at the limit with linear interpolation and integrated with the trapezoid rule. Hand-written because no
maintained library computes it exactly; it reuses the one sort of `curves.rank`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nipad.errors import ConfigError, DataError
from nipad.metrics.curves import CurveCounts, Ranking, as_binary, check_finite, curve_counts, rank

_EIGHT_CONNECTED = np.ones((3, 3), dtype=int)


def region_weights(masks: np.ndarray) -> tuple[np.ndarray, int]:
    """Per-pixel weight 1 / (size of its ground-truth region), 0 off-region, and the number of regions."""
    weights = np.zeros(masks.shape, dtype=np.float64)
    n_regions = 0
    for i, mask in enumerate(masks):
        labeled, n = ndimage.label(mask, structure=_EIGHT_CONNECTED)
        if n == 0:
            continue
        inverse_size = np.zeros(n + 1, dtype=np.float64)
        inverse_size[1:] = 1.0 / np.bincount(labeled.ravel(), minlength=n + 1)[1:]
        weights[i] = inverse_size[labeled]
        n_regions += n
    return weights, n_regions


def truncated_trapezoid(x: np.ndarray, y: np.ndarray, x_max: float) -> float:
    """Trapezoid area under y(x) for x <= x_max, x non-decreasing, interpolating y linearly at x_max."""
    inside = int(np.searchsorted(x, x_max, side="right"))
    xs, ys = x[:inside], y[:inside]
    area = float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1])) / 2.0)
    if xs[-1] < x_max:
        x0, x1, y0, y1 = x[inside - 1], x[inside], y[inside - 1], y[inside]
        y_cut = y0 + (y1 - y0) * (x_max - x0) / (x1 - x0)
        area += float(0.5 * (y_cut + y0) * (x_max - x0))
    return area


def aupro_from_ranking(
    ranking: Ranking, masks: np.ndarray, fpr_limit: float = 0.3, counts: CurveCounts | None = None
) -> float | None:
    """AUPRO from maps already ranked by `curves.rank` and their bool (N, H, W) masks (and, to skip recounting,
    their `curve_counts`); None without regions or without normal pixels."""
    if not 0.0 < fpr_limit <= 1.0:
        raise ConfigError(f"fpr_limit must be in (0, 1]; got {fpr_limit}.")
    weights, n_regions = region_weights(masks)
    counts = curve_counts(ranking, masks) if counts is None else counts
    if n_regions == 0 or counts.n_neg == 0:
        return None
    pro = np.clip(ranking.cumulative(weights) / n_regions, 0.0, 1.0)
    fpr = counts.fps / counts.n_neg
    fpr = np.concatenate(([0.0], fpr, [1.0]))
    pro = np.concatenate(([0.0], pro, [1.0]))
    return truncated_trapezoid(fpr, pro, fpr_limit) / fpr_limit


def aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float | None:
    """AUPRO of anomaly maps (N, H, W) against ground-truth masks (N, H, W), normalised to [0, 1]."""
    maps = np.asarray(maps)
    masks = as_binary(masks, "masks")
    if maps.ndim != 3 or maps.shape != masks.shape:
        raise DataError(f"anomaly maps {maps.shape} and masks {masks.shape} must both be (N, H, W).")
    check_finite(maps, "anomaly maps")
    return aupro_from_ranking(rank(maps), masks, fpr_limit)
