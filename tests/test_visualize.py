"""Heatmap overlay and defect outline: colours from the named colormap, outline exactly on the mask boundary."""

import numpy as np
import pytest
from matplotlib import colormaps

from nipad.errors import ConfigError
from nipad.visualize import RED, colorize, draw_outline, overlay_heatmap


def _image(h=20, w=30, value=100):
    return np.full((h, w, 3), value, np.uint8)


def test_colorize_matches_matplotlib_colormap():
    values = np.linspace(0, 1, 11)[None]
    for name in ("jet", "inferno"):
        assert (colorize(values, name)[0] == colormaps[name](values[0], bytes=True)[:, :3]).all()
    assert (colorize(np.array([[-3.0, np.nan, 7.0]]), "jet") == colorize(np.array([[0.0, 0.0, 1.0]]), "jet")).all()


def test_overlay_blends_image_and_heat_by_alpha():
    image = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    amap = np.tile(np.linspace(0, 1, 30), (20, 1))
    assert (overlay_heatmap(image, amap, alpha=0.0) == image).all()
    heat = overlay_heatmap(image, amap, alpha=1.0)
    assert (heat == colorize(amap, "jet")).all()
    assert heat[0, -1, 0] > heat[0, -1, 2] and heat[0, 0, 2] > heat[0, 0, 0]  # jet: high red, low blue
    half = overlay_heatmap(image, amap, alpha=0.5).astype(int)
    assert np.abs(half - (image.astype(int) + heat.astype(int)) / 2).max() <= 1
    assert overlay_heatmap(image, amap).dtype == np.uint8


@pytest.mark.parametrize("call, match", [
    (lambda: overlay_heatmap(_image(), np.zeros((10, 10))), "differ in size"),
    (lambda: overlay_heatmap(_image(), np.zeros((20, 30)), alpha=1.5), "alpha"),
    (lambda: overlay_heatmap(_image(), np.zeros((20, 30)), colormap="nope"), "colormap"),
    (lambda: overlay_heatmap(_image().astype(np.float32), np.zeros((20, 30))), "uint8"),
    (lambda: draw_outline(_image(), np.zeros((5, 5), bool)), "differ in size"),
])
def test_bad_arguments_raise_clear_errors(call, match):
    with pytest.raises(ConfigError, match=match):
        call()


def test_outline_is_the_mask_boundary_and_nothing_else():
    image = _image()
    mask = np.zeros((20, 30), bool)
    mask[5:12, 8:20] = True
    out = draw_outline(image, mask, color=(1, 2, 3), thickness=1)
    painted = (out != image).any(axis=2)
    ring = mask.copy()
    ring[6:11, 9:19] = False
    assert (painted == ring).all()
    assert (out[painted] == (1, 2, 3)).all()
    assert (image == 100).all()  # the input is not modified


def test_outline_thickness_border_and_empty_mask():
    image = _image()
    mask = np.zeros((20, 30), bool)
    mask[0:10, 0:10] = True  # touches the image border: the outline closes along it
    out = draw_outline(image, mask, thickness=2)
    painted = (out != image).any(axis=2)
    inner = np.zeros_like(mask)
    inner[2:8, 2:8] = True
    assert (painted == (mask & ~inner)).all() and (out[painted] == RED).all()
    assert (draw_outline(image, np.zeros((20, 30), bool)) == image).all()
    big = np.zeros((900, 1200), bool)
    big[100:500, 100:500] = True
    ring = (draw_outline(np.zeros((900, 1200, 3), np.uint8), big) != 0).any(axis=2)
    assert ring[300, 100:104].all() and not ring[300, 104]  # default width 1200/300 = 4 px
