"""AUPRO against a slow direct implementation of MVTec AD's definition, plus hand-computed and degenerate cases."""

import numpy as np
import pytest
from scipy import ndimage

from nipad.errors import ConfigError, DataError
from nipad.metrics import aupro


def slow_aupro(maps: np.ndarray, masks: np.ndarray, fpr_limit: float = 0.3) -> float:
    """Threshold by threshold: per-region overlap and FPR counted directly, curve cut at the limit, trapezoid."""
    regions = []
    for image_index, mask in enumerate(masks):
        labeled, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
        regions += [(image_index, labeled == k) for k in range(1, n + 1)]
    negatives = ~masks
    fprs, pros = [0.0], [0.0]
    for threshold in np.unique(maps)[::-1]:
        above = maps >= threshold
        pros.append(np.mean([above[i][region].sum() / region.sum() for i, region in regions]))
        fprs.append((above & negatives).sum() / negatives.sum())
    fprs.append(1.0)
    pros.append(1.0)
    fprs, pros = np.array(fprs), np.array(pros)
    first_beyond = int(np.argmax(fprs > fpr_limit)) if (fprs > fpr_limit).any() else len(fprs)
    x, y = list(fprs[:first_beyond]), list(pros[:first_beyond])
    if x[-1] < fpr_limit:
        x0, x1, y0, y1 = fprs[first_beyond - 1], fprs[first_beyond], pros[first_beyond - 1], pros[first_beyond]
        x.append(fpr_limit)
        y.append(y0 + (y1 - y0) * (fpr_limit - x0) / (x1 - x0))
    return float(np.trapezoid(y, x)) / fpr_limit


def random_maps_and_masks(seed: int, decimals: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Small maps with several blob regions in some images and empty masks in others."""
    rng = np.random.default_rng(seed)
    n, h, w = 6, 16, 16
    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        if i % 3 == 0:
            continue
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, h - 3), rng.integers(0, w - 3)
            masks[i, y : y + rng.integers(1, 4), x : x + rng.integers(1, 4)] = True
    maps = rng.normal(size=(n, h, w)) + masks * rng.uniform(0.5, 2.0)
    if decimals is not None:
        maps = np.round(maps, decimals)
    return maps.astype(np.float32), masks


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("decimals", [None, 1])
def test_matches_slow_reference(seed: int, decimals: int | None) -> None:
    maps, masks = random_maps_and_masks(seed, decimals)
    assert ndimage.label(masks[1], structure=np.ones((3, 3)))[1] >= 1
    assert aupro(maps, masks) == pytest.approx(slow_aupro(maps, masks), abs=1e-10)


@pytest.mark.parametrize("fpr_limit", [0.05, 0.5, 1.0])
def test_other_fpr_limits_match_reference(fpr_limit: float) -> None:
    maps, masks = random_maps_and_masks(11, 1)
    assert aupro(maps, masks, fpr_limit) == pytest.approx(slow_aupro(maps, masks, fpr_limit), abs=1e-10)


def test_regions_are_eight_connected() -> None:
    """Mask {(0,0),(0,1),(1,2)} is one 3-pixel region under 8-connectivity (two under 4-connectivity).
    Only (1,2) scores high: curve (0,0) -> (0,1/3) -> (1,1), so AUPRO@0.3 = (1/3 + 1/3 + 0.2) / 2 = 13/30."""
    masks = np.zeros((1, 4, 4), dtype=bool)
    masks[0, 0, 0] = masks[0, 0, 1] = masks[0, 1, 2] = True
    maps = np.zeros((1, 4, 4), dtype=np.float32)
    maps[0, 1, 2] = 1.0
    assert aupro(maps, masks) == pytest.approx(13 / 30)


def test_perfect_maps_score_one() -> None:
    _, masks = random_maps_and_masks(3, None)
    assert aupro(masks.astype(np.float32), masks) == pytest.approx(1.0)


def test_constant_maps() -> None:
    """One threshold: curve (0,0) -> (1,1), so the area up to 0.3 is 0.3^2 / 2, / 0.3 = 0.15."""
    _, masks = random_maps_and_masks(4, None)
    assert aupro(np.ones(masks.shape, dtype=np.float32), masks) == pytest.approx(0.15)


def test_one_pixel_anomaly() -> None:
    rng = np.random.default_rng(5)
    masks = np.zeros((3, 10, 10), dtype=bool)
    masks[1, 4, 7] = True
    maps = np.round(rng.random(masks.shape), 1).astype(np.float32)
    assert aupro(maps, masks) == pytest.approx(slow_aupro(maps, masks), abs=1e-12)


def test_undefined_cases_are_none() -> None:
    maps = np.random.default_rng(0).random((2, 8, 8))
    assert aupro(maps, np.zeros((2, 8, 8), dtype=bool)) is None
    assert aupro(maps, np.ones((2, 8, 8), dtype=bool)) is None


def test_bad_inputs_raise() -> None:
    maps, masks = random_maps_and_masks(0, None)
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="anomaly maps contain 1 NaN/inf"):
        aupro(bad, masks)
    with pytest.raises(DataError, match=r"\(N, H, W\)"):
        aupro(maps[:, :8], masks)
    with pytest.raises(ConfigError, match="fpr_limit"):
        aupro(maps, masks, fpr_limit=0.0)
