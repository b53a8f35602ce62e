import math

import pytest
import torch

from nipad.models.onenip.fusion import MIN_AUROC, fit_fusion, fuse, image_score


def _maps(n, anomalous, signal, seed):
    """n maps (n, 1, 16, 16) of noise; with `signal`, anomalous ones get a bright 6x6 square."""
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(n, 1, 16, 16, generator=g)
    if anomalous and signal:
        maps[:, :, 4:10, 4:10] += 3.0
    return maps


def test_maps_that_detect_the_pseudo_anomalies_are_averaged_and_a_map_at_chance_gets_weight_zero():
    normal = [_maps(20, False, True, 0), _maps(20, False, False, 1), None]
    anomalous = [_maps(20, True, True, 2), _maps(20, True, False, 3), None]
    fit = fit_fusion(normal, anomalous, pool=4)
    assert fit.auroc["rec"] == 1.0 and fit.auroc["ref"] < MIN_AUROC and math.isnan(fit.auroc["match"])
    assert fit.weights.tolist() == [1.0, 0.0, 0.0] and fit.fused_auroc == 1.0
    assert "ref" in fit.describe() and "(dropped)" in fit.describe()


def test_each_map_is_standardised_on_the_normal_images():
    normal = [_maps(30, False, True, 0) * 100 + 7, _maps(30, False, True, 1)]
    fit = fit_fusion([*normal, None], [_maps(30, True, True, 2) * 100 + 7, _maps(30, True, True, 3), None], pool=4)
    assert fit.weights.tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert fit.shift[0] == pytest.approx(float(normal[0].mean()))
    assert fit.shift[1] == pytest.approx(float(normal[1].mean()))
    for i in range(2):  # one unit = the normal images' 90th-percentile score, whatever the map's own scale
        peaks = image_score((normal[i] - fit.shift[i]) / fit.scale[i], 4)
        assert torch.quantile(peaks, 0.9) == pytest.approx(1.0, abs=1e-5)


def test_fuse_skips_absent_maps():
    a = torch.ones(1, 1, 2, 2)
    weights, shift, scale = torch.tensor([0.5, 0.2, 0.5]), torch.tensor([1.0, 0.0, 1.0]), torch.tensor([1.0, 1.0, 2.0])
    out = fuse([a, None, 3 * a], weights, shift, scale)
    assert torch.allclose(out, torch.full_like(a, 0.5))


def test_when_no_map_detects_anything_all_are_kept_and_the_fused_auroc_shows_it():
    normal = [_maps(20, False, False, 0), _maps(20, False, False, 1), None]
    fit = fit_fusion(normal, [_maps(20, True, False, 2), _maps(20, True, False, 3), None], pool=4)
    assert fit.weights.tolist() == pytest.approx([0.5, 0.5, 0.0]) and fit.fused_auroc < MIN_AUROC


def test_the_image_score_comes_from_the_matching_map_only_when_it_passes_validation():
    normal = [_maps(20, False, True, 0), _maps(20, False, True, 1), _maps(20, False, True, 4)]
    good = fit_fusion(normal, [_maps(20, True, True, s) for s in (2, 3, 5)], pool=4, score_from_match=True)
    assert good.weights.tolist() == pytest.approx([1 / 3] * 3) and good.score_weights.tolist() == [0.0, 0.0, 1.0]
    assert "image score from the matching map" in good.describe()
    blind = fit_fusion(normal, [_maps(20, True, True, 2), _maps(20, True, True, 3), _maps(20, True, False, 5)], pool=4,
                       score_from_match=True)
    assert blind.auroc["match"] < MIN_AUROC and torch.equal(blind.score_weights, blind.weights)
    assert blind.weights.tolist() == pytest.approx([0.5, 0.5, 0.0])
    assert torch.equal(fit_fusion(normal, [_maps(20, True, True, s) for s in (2, 3, 5)], pool=4).score_weights,
                       good.weights)
