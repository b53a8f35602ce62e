"""nipad's LPIPS against the `lpips` package itself: torchvision's AlexNet layout, the lpips package's own linear
heads, and equal distances and distance maps on distorted copies of a photograph (benchmarks/lpips_parity.py prints
them)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from nipad.models.anomalysd.perceptual import distance_map
from nipad.models.lpips.lpips_net import LPIPS, alexnet_features
from nipad.models.lpips.weights import load_weights

from lpips_reference import distortions, photo, reference_lpips


@pytest.fixture(scope="module")
def ours() -> LPIPS:
    return LPIPS.pretrained()


@pytest.fixture(scope="module")
def images() -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    x = photo()
    return x, distortions(x)


def test_the_trunk_has_torchvision_alexnet_features_layout():
    theirs, mine = torchvision.models.alexnet().features, alexnet_features()
    assert [repr(m) for m in mine] == [repr(m) for m in theirs]
    assert {k: v.shape for k, v in mine.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}


def test_the_heads_are_the_lpips_package_own_v0_1_alexnet_heads():
    import lpips

    path = f"{lpips.__path__[0]}/weights/v0.1/alex.pth"
    heads = torch.load(path, map_location="cpu", weights_only=True)
    tensors = load_weights()
    assert len(heads) == 5
    for i in range(5):
        assert torch.equal(tensors[f"lins.{i}.weight"], heads[f"lin{i}.model.1.weight"])


def test_distances_match_the_lpips_package_and_order_blur_and_noise_alike(ours, images):
    x, distorted = images
    reference = reference_lpips(load_weights())
    with torch.no_grad():
        mine = {k: ours(x, v).item() for k, v in distorted.items()}
        theirs = {k: reference(x * 2 - 1, v * 2 - 1).item() for k, v in distorted.items()}
    for name in distorted:
        assert mine[name] == pytest.approx(theirs[name], rel=1e-5, abs=1e-7), name
    assert (mine["noise"] < mine["blur"]) == (theirs["noise"] < theirs["blur"])
    assert abs(mine["noise"] - mine["blur"]) > 0.1  # a clear order, not a tie
    assert ours(x, x).item() == 0


def test_distance_maps_match_the_lpips_package_spatial_maps(ours, images):
    x, distorted = images
    reference = reference_lpips(load_weights(), spatial=True)
    with torch.no_grad():
        theirs = reference(x * 2 - 1, distorted["jpeg"] * 2 - 1)
        mine = distance_map(ours, ours.stages(x), ours.stages(distorted["jpeg"]), x.shape[-1])
    assert mine.shape == theirs.shape == (1, 1, 256, 256)
    assert torch.allclose(mine, theirs, rtol=1e-5, atol=1e-6)


def test_it_stays_frozen_and_lets_gradients_reach_the_images(ours, images):
    x, distorted = images
    y = distorted["blur"].clone().requires_grad_(True)
    ours.train()
    ours(x, y).sum().backward()
    assert not ours.training and not any(p.requires_grad for p in ours.parameters())
    assert y.grad.abs().sum() > 0
