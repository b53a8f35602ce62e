import numpy as np
import pytest

from nipad.synth import perlin_blend, perlin_mask, perlin_noise


@pytest.mark.parametrize("shape", [(224, 224), (100, 100), (37, 91), (5, 3)])
@pytest.mark.parametrize("scales", [(1, 1), (2, 4), (32, 16)])
def test_perlin_noise_any_shape_and_range(shape, scales):
    noise = perlin_noise(shape, scales, np.random.default_rng(0))
    assert noise.shape == shape and np.isfinite(noise).all()
    assert np.abs(noise).max() <= 1.0


def test_perlin_noise_is_zero_on_lattice_points_and_spans_its_range():
    noise = perlin_noise((128, 64), (4, 2), np.random.default_rng(1))
    np.testing.assert_allclose(noise[::32, ::32], 0.0, atol=1e-12)
    wide = np.concatenate([perlin_noise((64, 64), (8, 8), np.random.default_rng(s)).ravel() for s in range(20)])
    assert wide.max() > 0.6 and wide.min() < -0.6


def test_perlin_noise_is_smooth():
    noise = perlin_noise((256, 256), (4, 4), np.random.default_rng(2))
    assert np.abs(np.diff(noise, axis=0)).max() < 0.1
    assert np.abs(np.diff(noise, axis=1)).max() < 0.1


def test_perlin_noise_deterministic_for_a_seed():
    a = perlin_noise((50, 70), (4, 8), np.random.default_rng(9))
    b = perlin_noise((50, 70), (4, 8), np.random.default_rng(9))
    c = perlin_noise((50, 70), (4, 8), np.random.default_rng(10))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_perlin_noise_rejects_bad_arguments():
    with pytest.raises(ValueError, match="positive"):
        perlin_noise((0, 10), (2, 2), np.random.default_rng(0))


@pytest.mark.parametrize("shape", [(256, 256), (100, 100), (9, 13)])
def test_perlin_masks_are_never_empty(shape):
    rng = np.random.default_rng(4)
    for _ in range(30):
        mask = perlin_mask(shape, rng)
        assert mask.dtype == bool and mask.shape == shape and mask.any()


def test_perlin_mask_covers_a_minority_of_the_image():
    rng = np.random.default_rng(5)
    fractions = [perlin_mask((128, 128), rng).mean() for _ in range(100)]
    assert 0.0 < np.mean(fractions) < 0.3


@pytest.mark.parametrize("seed", range(10))
def test_perlin_blend_changes_only_masked_pixels_with_bounded_beta(seed):
    image = np.full((64, 80, 3), 200, dtype=np.uint8)
    texture = np.zeros_like(image)
    out, mask = perlin_blend(image, texture, np.random.default_rng(seed))
    assert out.dtype == np.uint8 and out.shape == image.shape and mask.any()
    np.testing.assert_array_equal(out[~mask], image[~mask])
    # Black texture: inside the mask x_a = beta * 200, one beta for the whole mask, beta in [0, 0.8].
    inside = np.unique(out[mask])
    assert inside.size == 1 and 0 <= inside[0] <= int(0.8 * 200)


def test_perlin_blend_mixes_texture_and_image():
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    texture = np.full_like(image, 255)
    rng = np.random.default_rng(0)
    values = [perlin_blend(image, texture, rng)[0].max() for _ in range(50)]
    # x_a = (1 - beta) * 255 with beta in [0, 0.8): at least 20% texture, spread over the whole range.
    assert min(values) >= int(0.2 * 255) and max(values) - min(values) > 100


def test_perlin_blend_is_deterministic_and_leaves_input_alone():
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    texture = np.random.default_rng(1).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    before = image.copy()
    a = perlin_blend(image, texture, np.random.default_rng(3))
    b = perlin_blend(image, texture, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(image, before)


def test_perlin_blend_rejects_mismatched_texture():
    image = np.zeros((32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="texture shape"):
        perlin_blend(image, np.zeros((16, 32, 3), dtype=np.uint8), np.random.default_rng(0))
