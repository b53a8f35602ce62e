import numpy as np
import pytest

from nipad.errors import ConfigError
from nipad.synth import ImageBankTextures, PseudoAnomaly


class _ConstantTexture:
    """Black textures; counts how often one is asked for (once per Perlin-branch sample)."""

    def __init__(self) -> None:
        self.calls = 0

    def sample(self, rng, size):
        self.calls += 1
        return np.zeros((*size, 3), dtype=np.uint8)


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).integers(40, 256, (64, 64, 3), dtype=np.uint8)


def test_hybrid_masks_are_non_empty_and_cover_the_changes(image):
    synth = PseudoAnomaly(ImageBankTextures([image]))
    rng = np.random.default_rng(0)
    for _ in range(40):
        out, mask = synth(image, rng)
        assert out.shape == image.shape and out.dtype == np.uint8
        assert mask.shape == image.shape[:2] and mask.dtype == bool and mask.any()
        np.testing.assert_array_equal(out[~mask], image[~mask])


@pytest.mark.parametrize(("p_perlin", "low", "high"), [(0.0, 0, 0), (1.0, 20, 20), (0.5, 4, 16)])
def test_p_perlin_selects_the_branch(image, p_perlin, low, high):
    textures = _ConstantTexture()
    synth = PseudoAnomaly(textures, p_perlin=p_perlin)
    rng = np.random.default_rng(1)
    for _ in range(20):
        synth(image, rng)
    assert low <= textures.calls <= high


def test_hybrid_uses_both_branches(image):
    synth = PseudoAnomaly(_ConstantTexture())
    rng = np.random.default_rng(2)
    rectangular = 0
    for _ in range(40):
        _, mask = synth(image, rng)
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        rectangular += int(mask.sum() == (rows[-1] - rows[0] + 1) * (cols[-1] - cols[0] + 1))
    assert 3 < rectangular < 37


def test_deterministic_for_a_seed(image):
    synth = PseudoAnomaly(ImageBankTextures([image]))
    for seed in range(6):
        a = synth(image, np.random.default_rng(seed))
        b = synth(image, np.random.default_rng(seed))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_rejects_bad_probability():
    with pytest.raises(ConfigError, match="p_perlin"):
        PseudoAnomaly(_ConstantTexture(), p_perlin=1.5)
