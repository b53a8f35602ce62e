import colorsys

import numpy as np

from nipad.synth import color_jitter


def test_jitter_keeps_shape_and_varies_with_seed():
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    outs = [color_jitter(image, np.random.default_rng(s)) for s in range(5)]
    assert all(o.shape == image.shape and o.dtype == np.uint8 for o in outs)
    assert len({o.tobytes() for o in outs}) == 5
    np.testing.assert_array_equal(color_jitter(image, np.random.default_rng(2)), outs[2])


def test_zero_strength_is_identity():
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = color_jitter(image, np.random.default_rng(0), brightness=0, contrast=0, saturation=0, hue=0)
    np.testing.assert_array_equal(out, image)


def test_hue_only_keeps_value_and_shifts_hue_within_bound():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[...] = (200, 60, 60)
    for seed in range(10):
        out = color_jitter(image, np.random.default_rng(seed), brightness=0, contrast=0, saturation=0, hue=0.1)
        h0 = colorsys.rgb_to_hsv(*(image[0, 0] / 255))[0]
        h1, _, v1 = colorsys.rgb_to_hsv(*(out[0, 0] / 255))
        shift = min(abs(h1 - h0), 1 - abs(h1 - h0))
        assert shift <= 0.1 + 0.01 and abs(v1 - 200 / 255) < 0.02
