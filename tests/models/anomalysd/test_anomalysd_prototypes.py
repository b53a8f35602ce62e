"""AnomalySD prototype-guided masks: the Otsu threshold, the feature bank with rotations, the error map."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from nipad.models.anomalysd.prototypes import (
    build_bank,
    error_map,
    prototype_mask,
    psi,
    rotations,
)
from nipad.models.anomalysd.threshold import otsu_threshold, within_group_ss
from nipad.models.backbone import create_backbone


@pytest.fixture(scope="module")
def backbone():
    return create_backbone("lite0")


def brute_force_minimum(values: np.ndarray) -> float:
    """The least n_lo Var(lo) + n_hi Var(hi) over every split between two distinct sorted values."""
    v = np.unique(values)
    return min(within_group_ss(values, (a + b) / 2) for a, b in pairwise(v))


@pytest.mark.parametrize("values", [
    np.random.default_rng(0).normal(0, 1, 300),
    np.concatenate([np.random.default_rng(1).normal(0, 1, 200), np.random.default_rng(2).normal(6, 0.5, 20)]),
    np.random.default_rng(3).integers(0, 5, 80).astype(float),  # many ties
    np.random.default_rng(4).exponential(1e6, 150) + 1e9,  # large offset: no cancellation
], ids=["normal", "bimodal", "ties", "offset"])
def test_otsu_threshold_minimises_the_within_group_variance(values):
    r = otsu_threshold(values)
    assert values.min() <= r < values.max()
    assert within_group_ss(values, r) == pytest.approx(brute_force_minimum(values), rel=1e-9)
    assert not np.any(values == r)  # between two values: E > r and E >= r agree


def test_otsu_threshold_separates_two_clusters_and_handles_constants():
    values = np.array([1.0, 1.1, 0.9, 1.05, 8.0, 8.2, 7.9])
    assert 1.1 < otsu_threshold(torch.tensor(values)) < 7.9
    assert otsu_threshold(np.full(10, 3.0)) == 3.0  # nothing above: an empty mask


def test_psi_concatenates_stride_8_and_upsampled_stride_16(backbone):
    x = torch.rand(2, 3, 64, 64)
    f = psi(backbone, x)
    assert f.shape == (2, backbone.channels[2] + backbone.channels[3], 8, 8)
    assert torch.allclose(f[:, :backbone.channels[2]], backbone(x)[2])


def test_bank_holds_every_rotation(backbone):
    shot = torch.rand(1, 3, 64, 64)
    bank = build_bank(backbone, shot, (0, 90, 180, 270))
    assert bank.shape == (4 * 64, backbone.channels[2] + backbone.channels[3])
    turned = rotations(shot, (90,))
    assert torch.equal(turned[0], torch.rot90(shot[0], 1, dims=(1, 2)))
    other = error_map(psi(backbone, torch.rand(1, 3, 64, 64))[0], bank)
    assert error_map(psi(backbone, turned)[0], bank).max() < 1e-4 * other.mean()  # a rotated shot is in the bank


def test_error_map_is_the_nearest_neighbour_distance():
    gen = torch.Generator().manual_seed(0)
    features, bank = torch.randn(5, 3, 4, generator=gen), torch.randn(50, 5, generator=gen)
    expected = torch.tensor([[min(float(((features[:, i, j] - p) ** 2).sum()) for p in bank) for j in range(4)]
                             for i in range(3)])
    assert torch.allclose(error_map(features, bank, chunk=7), expected, atol=1e-4)


def test_prototype_mask_marks_the_high_error_region():
    error = torch.full((8, 8), 0.1) + 0.01 * torch.rand(8, 8)
    error[2:4, 5:7] = 5.0
    mask = prototype_mask(error, 64)
    assert mask.shape == (1, 1, 64, 64)
    expected = torch.zeros(64, 64)
    expected[16:32, 40:56] = 1
    assert torch.equal(mask[0, 0], expected)
