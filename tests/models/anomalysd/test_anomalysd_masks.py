"""AnomalySD masks: foreground estimate, IoU-filtered training rectangles, multi-scale grids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nipad.models.anomalysd.masks import (
    estimate_foreground,
    grid_masks,
    multiscale_masks,
    random_rectangles,
    rectangle_iou,
    training_mask,
)

GAMMAS = (0.0, 0.2, 0.5)


def disc(size: int, radius: float, centre: tuple[float, float]) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("foreground", [
    disc(64, 20, (30, 34)),
    disc(64, 5, (10, 50)),
    np.eye(64, dtype=bool) | np.eye(64, k=1, dtype=bool),  # thin diagonal object: gamma 0.5 is rarely reachable
    np.ones((48, 64), bool),
], ids=["disc", "small-disc", "diagonal", "texture"])
def test_training_masks_meet_the_iou_rule(foreground):
    rng = np.random.default_rng(0)
    for _ in range(150):
        mask, gamma = training_mask(foreground, GAMMAS, rng)
        assert mask.shape == foreground.shape and mask.dtype == bool
        ys, xs = np.nonzero(mask)
        assert mask.sum() == (np.ptp(ys) + 1) * (np.ptp(xs) + 1)  # a filled rectangle
        assert gamma in GAMMAS
        assert iou(mask, foreground) > gamma


def test_training_masks_keep_the_drawn_gamma_for_a_large_object():
    rng = np.random.default_rng(1)
    met = [training_mask(disc(64, 20, (32, 32)), GAMMAS, rng)[1] for _ in range(300)]
    counts = {g: met.count(g) for g in GAMMAS}
    assert all(70 < n < 130 for n in counts.values()), counts  # about a third each: no fallback needed


def test_rectangle_iou_matches_pixel_counts():
    rng = np.random.default_rng(2)
    fg = rng.random((40, 56)) < 0.3
    rects = random_rectangles(rng, fg, 50)
    for rect, value in zip(rects, rectangle_iou(rects, fg), strict=True):
        y0, x0, y1, x1 = rect
        box = np.zeros_like(fg)
        box[y0:y1, x0:x1] = True
        assert value == pytest.approx(iou(box, fg))
        assert fg[y0:y1, x0:x1].any()


@pytest.mark.parametrize("size", [64, 60, 37])
def test_multiscale_masks_tile_the_image_exactly(size):
    scales = (1, 2, 4, 8)
    for k, masks in zip(scales, multiscale_masks(size, scales), strict=True):
        assert masks.shape == (k * k, 1, size, size)
        assert set(masks.unique().tolist()) <= {0.0, 1.0}
        assert torch.equal(masks.sum(dim=0), torch.ones(1, size, size))  # every pixel in exactly one mask
        for m in masks[:, 0]:
            rows, cols = m.any(dim=1).nonzero()[:, 0], m.any(dim=0).nonzero()[:, 0]
            assert m.sum() == len(rows) * len(cols)  # each cell is one rectangle
            assert size // k <= len(rows) <= -(-size // k)


def test_grid_masks_are_row_major():
    masks = grid_masks(8, 2)
    assert masks[1, 0, 0, 7] == 1 and masks[2, 0, 7, 0] == 1


def test_foreground_of_an_object_on_a_plain_background():
    rng = np.random.default_rng(3)
    obj = disc(96, 25, (50, 44))
    image = np.full((96, 96, 3), (40, 45, 50), np.float64) + rng.normal(0, 3, (96, 96, 3))
    image[obj] = (200, 150, 90)
    fg = estimate_foreground(np.clip(image, 0, 255).astype(np.uint8))
    assert iou(fg, obj) > 0.9


def test_foreground_of_a_texture_is_the_whole_image():
    xx = np.mgrid[0:64, 0:64][1]
    stripes = (128 + 60 * np.sin(xx / 3.0))[..., None].repeat(3, axis=2).astype(np.uint8)
    assert estimate_foreground(stripes).all()
