"""PaDiM: Mahalanobis distance and the streaming Gaussian fit against NumPy; embedding shapes of both baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nipad.errors import ConfigError
from nipad.models.backbone import create_backbone
from nipad.models.baselines.padim import Padim, PadimConfig, gaussian_fit, mahalanobis
from nipad.models.baselines.patchcore import PatchCore, PatchCoreConfig


def test_mahalanobis_matches_numpy():
    rng = np.random.default_rng(0)
    p, d = 5, 4
    x = rng.normal(size=(3, p, d))
    mean = rng.normal(size=(p, d))
    a = rng.normal(size=(p, d, d))
    inv = np.linalg.inv(a @ a.transpose(0, 2, 1) + 0.5 * np.eye(d))
    got = mahalanobis(*(torch.tensor(v, dtype=torch.float32) for v in (x, mean, inv))).numpy()
    expected = np.array([[np.sqrt((x[b, q] - mean[q]) @ inv[q] @ (x[b, q] - mean[q])) for q in range(p)]
                         for b in range(3)])
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_streaming_gaussian_fit_matches_numpy_cov():
    rng = np.random.default_rng(1)
    samples = rng.normal(size=(20, 3, 6)) * np.arange(1, 7)  # (n, positions, d)
    batches = [torch.tensor(samples[:7]), torch.tensor(samples[7:])]
    total = sum(b.sum(dim=0) for b in batches)
    outer = sum(torch.einsum("npd,npe->pde", b, b) for b in batches)
    mean, inv = gaussian_fit(total, outer, 20, eps=0.01, chunk=2)
    for q in range(3):
        cov = np.cov(samples[:, q], rowvar=False) + 0.01 * np.eye(6)
        np.testing.assert_allclose(mean[q].numpy(), samples[:, q].mean(axis=0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(inv[q].numpy(), np.linalg.inv(cov), rtol=1e-4, atol=1e-6)
    _, single = gaussian_fit(torch.tensor(samples[0]), torch.einsum("pd,pe->pde", *[torch.tensor(samples[0])] * 2),
                             1, eps=0.01)
    np.testing.assert_allclose(single.numpy(), np.broadcast_to(100 * np.eye(6), (3, 6, 6)), rtol=1e-4)


@pytest.fixture(scope="module")
def backbone():
    return create_backbone("lite0")


def test_embeddings_and_channel_subset(backbone):
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    padim = Padim(PadimConfig(image_size=64, dims=30, seed=3), backbone)
    assert padim.embed(images).shape == (2, 30, 16, 16)
    assert padim.channels.tolist() == Padim(PadimConfig(image_size=64, dims=30, seed=3), backbone).channels.tolist()
    assert len(set(padim.channels.tolist())) == 30
    patchcore = PatchCore(PatchCoreConfig(image_size=64), backbone)
    assert patchcore.embed(images).shape == (2, 40 + 112, 8, 8)
    with pytest.raises(ConfigError, match="exceeds"):
        Padim(PadimConfig(image_size=64, dims=500), backbone)
    with pytest.raises(ConfigError, match="mode"):
        PadimConfig(mode="both")
    with pytest.raises(ConfigError, match="coreset"):
        PatchCoreConfig(coreset_ratio=0)
