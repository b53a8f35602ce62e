import numpy as np
import pytest
from PIL import Image

from nipad.synth import cutpaste_rect, cutpaste_scar, paste_patch


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return rows[0], rows[-1] + 1, cols[0], cols[-1] + 1


@pytest.mark.parametrize("seed", range(20))
def test_rect_mask_is_a_rectangle_and_only_it_changes(noise_image, seed):
    out, mask = cutpaste_rect(noise_image, np.random.default_rng(seed))
    assert out.dtype == np.uint8 and out.shape == noise_image.shape
    assert mask.dtype == bool and mask.shape == noise_image.shape[:2]
    y0, y1, x0, x1 = _bbox(mask)
    assert mask[y0:y1, x0:x1].all() and mask.sum() == (y1 - y0) * (x1 - x0)
    np.testing.assert_array_equal(out[~mask], noise_image[~mask])


@pytest.mark.parametrize("seed", range(20))
def test_rect_without_jitter_pastes_an_exact_crop_of_the_image(noise_image, seed):
    out, mask = cutpaste_rect(noise_image, np.random.default_rng(seed), jitter=False)
    y0, y1, x0, x1 = _bbox(mask)
    block = out[y0:y1, x0:x1]
    h, w = block.shape[:2]
    H, W = noise_image.shape[:2]
    sources = [(top, left) for top in range(H - h + 1) for left in range(W - w + 1)
               if np.array_equal(noise_image[top : top + h, left : left + w], block)]
    assert len(sources) == 1


def test_rect_jitter_changes_the_patch_colours(noise_image):
    rng_seeds = range(10)
    changed = 0
    for seed in rng_seeds:
        plain, _ = cutpaste_rect(noise_image, np.random.default_rng(seed), jitter=False)
        jittered, mask = cutpaste_rect(noise_image, np.random.default_rng(seed), jitter=True)
        changed += int(not np.array_equal(plain[mask], jittered[mask]))
    assert changed >= 8


@pytest.mark.parametrize("shape", [(256, 256), (64, 48), (30, 200)])
def test_rect_area_within_bounds(shape):
    image = np.zeros((*shape, 3), dtype=np.uint8)
    rng = np.random.default_rng(7)
    areas = np.array([cutpaste_rect(image, rng, jitter=False)[1].sum() for _ in range(200)]) / (shape[0] * shape[1])
    assert areas.max() <= 0.15
    assert areas.min() >= (0.015 if shape == (256, 256) else 0.005)
    assert areas.mean() > 0.05


def test_rect_aspect_ratios_cover_both_orientations():
    image = np.zeros((256, 256, 3), dtype=np.uint8)
    rng = np.random.default_rng(3)
    ratios = []
    for _ in range(100):
        y0, y1, x0, x1 = _bbox(cutpaste_rect(image, rng, jitter=False)[1])
        ratios.append((x1 - x0) / (y1 - y0))
    assert min(ratios) >= 0.25 and max(ratios) <= 3.6
    assert min(ratios) < 0.7 and max(ratios) > 1.5


@pytest.mark.parametrize("seed", range(30))
def test_scar_changes_only_masked_pixels_taken_from_the_image(noise_image, seed):
    out, mask = cutpaste_scar(noise_image, np.random.default_rng(seed), jitter=False)
    assert mask.any()
    np.testing.assert_array_equal(out[~mask], noise_image[~mask])
    colours = {tuple(c) for c in noise_image.reshape(-1, 3)}
    assert all(tuple(c) in colours for c in out[mask])


def test_scar_size_scales_with_image_side():
    def mean_area(side: int) -> float:
        image = np.zeros((side, side, 3), dtype=np.uint8)
        rng = np.random.default_rng(0)
        return float(np.mean([cutpaste_scar(image, rng, jitter=False)[1].sum() for _ in range(100)]))

    small, large = mean_area(128), mean_area(256)
    assert 20 < small < 150 and 3 < large / small < 5


class _MaxRng:
    """Stands in for np.random.Generator and always draws the top of each range: the largest scar, rotated 45
    degrees, pasted at the bottom-right-most position its un-rotated size allows."""

    def integers(self, low: int, high: int) -> int:
        return high - 1

    def uniform(self, low: float, high: float) -> float:
        return high


def test_scar_is_clipped_at_the_border():
    image = np.zeros((256, 256, 3), dtype=np.uint8)
    _, mask = cutpaste_scar(image, _MaxRng(), jitter=False)
    full = Image.new("L", (16, 25), 255).rotate(45, resample=Image.Resampling.NEAREST, expand=True)
    assert mask[-1].any() and mask[:, -1].any()
    assert 0 < mask.sum() < (np.asarray(full) > 0).sum()


def test_scars_touch_the_border_for_random_draws():
    image = np.zeros((128, 128, 3), dtype=np.uint8)
    rng = np.random.default_rng(0)
    touching = sum(
        int(mask[-1].any() or mask[:, -1].any())
        for mask in (cutpaste_scar(image, rng, jitter=False)[1] for _ in range(300))
    )
    assert touching > 0


def test_paste_patch_clips_outside_parts():
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    patch = np.full((4, 6, 3), 200, dtype=np.uint8)
    alpha = np.ones((4, 6), dtype=bool)
    alpha[0, 0] = False
    out, mask = paste_patch(image, patch, alpha, top=8, left=-2)
    expected = np.zeros((10, 10), dtype=bool)
    expected[8:10, 0:4] = True
    np.testing.assert_array_equal(mask, expected)
    assert (out[mask] == 200).all() and (out[~mask] == 0).all()
    assert not paste_patch(image, patch, alpha, top=20, left=0)[1].any()


def test_cutpaste_is_deterministic_for_a_seed(noise_image):
    for fn in (cutpaste_rect, cutpaste_scar):
        a = fn(noise_image, np.random.default_rng(5))
        b = fn(noise_image, np.random.default_rng(5))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_cutpaste_does_not_modify_its_input(noise_image):
    before = noise_image.copy()
    cutpaste_rect(noise_image, np.random.default_rng(0))
    cutpaste_scar(noise_image, np.random.default_rng(0))
    np.testing.assert_array_equal(noise_image, before)


def test_cutpaste_rejects_non_uint8_rgb():
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        cutpaste_rect(np.zeros((8, 8), dtype=np.uint8), np.random.default_rng(0))
