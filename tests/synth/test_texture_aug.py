import numpy as np
import pytest

from nipad.synth import TEXTURE_OPS, augment_texture, texture_aug


@pytest.fixture
def texture() -> np.ndarray:
    gradient = np.linspace(20, 230, 48, dtype=np.float64)
    diagonal = np.add.outer(gradient, gradient) / 2
    return np.stack([diagonal, np.tile(gradient, (48, 1)), np.tile(gradient[:, None], (1, 48))], -1).astype(np.uint8)


def test_there_are_ten_distinct_ops():
    assert len(TEXTURE_OPS) == 10 and len(set(TEXTURE_OPS)) == 10


@pytest.mark.parametrize("op", TEXTURE_OPS, ids=lambda op: op.__name__)
def test_each_op_keeps_shape_and_dtype(op, texture):
    for seed in range(4):
        out = op(texture, np.random.default_rng(seed))
        assert out.dtype == np.uint8 and out.shape == texture.shape


def test_invert_and_equalize_do_what_they_say(texture):
    np.testing.assert_array_equal(texture_aug.invert(texture, np.random.default_rng(0)), 255 - texture)
    equalized = texture_aug.equalize(texture, np.random.default_rng(0))
    assert equalized.min() < texture.min() and equalized.max() > texture.max()


def test_gamma_contrast_is_per_channel(texture):
    grey = np.full_like(texture, 128)
    out = texture_aug.gamma_contrast(grey, np.random.default_rng(0))
    assert len({int(out[0, 0, c]) for c in range(3)}) == 3


def test_augment_texture_applies_three_distinct_ops(texture, monkeypatch):
    calls: list[str] = []

    def recorder(name):
        def op(x, rng):
            calls.append(name)
            return x
        return op

    monkeypatch.setattr(texture_aug, "TEXTURE_OPS", tuple(recorder(str(i)) for i in range(10)))
    rng = np.random.default_rng(0)
    for _ in range(20):
        calls.clear()
        augment_texture(texture, rng)
        assert len(calls) == 3 and len(set(calls)) == 3


def test_augment_texture_changes_the_texture_and_is_deterministic(texture):
    outs = [augment_texture(texture, np.random.default_rng(s)) for s in range(10)]
    assert sum(not np.array_equal(o, texture) for o in outs) >= 8
    np.testing.assert_array_equal(augment_texture(texture, np.random.default_rng(3)), outs[3])
