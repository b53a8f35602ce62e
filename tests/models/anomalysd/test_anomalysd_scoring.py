"""AnomalySD scoring (eqs. 16-21) with stand-in inpainters: harmonic mean, fusion, an oracle that restores the
clean image, and the UNet-evaluation count."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import hmean

from nipad.models.anomalysd.inference import (
    denoising_steps,
    harmonic_mean,
    score_image,
    unet_evaluations,
)
from nipad.models.anomalysd.masks import multiscale_masks
from nipad.models.anomalysd.perceptual import (
    BackboneStages,
    create_perceptual,
    distance_map,
    perceptual_distance,
    perceptual_loss,
)
from nipad.models.anomalysd.prototypes import build_bank, error_map, prototype_mask, psi
from nipad.models.backbone import create_backbone
from nipad.models.lpips.lpips_net import LPIPS

SIZE = 64


@pytest.fixture(scope="module")
def backbone():
    return create_backbone("lite0")


@pytest.fixture(scope="module", params=["lpips", "lite0"])
def perceptual(request, backbone):
    return create_perceptual("lpips") if request.param == "lpips" else BackboneStages(backbone)


# inside / outside contrast of a pasted 12 x 12 anomaly's map at 64 px: AlexNet's stride-16 stages are 3 x 3 there,
# so LPIPS spreads it wider than Lite0 (measured 1.9 and over 3)
CONTRAST = {"lpips": 1.5, "lite0": 3.0}


def stripes(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    xx = np.mgrid[0:SIZE, 0:SIZE][1]
    img = 128 + 60 * np.sin(xx / 3.0 + rng.uniform(0, 6.28))[..., None] + rng.normal(0, 6, (SIZE, SIZE, 3))
    return torch.from_numpy(np.clip(img, 0, 255) / 255).float().permute(2, 0, 1)[None]


def test_harmonic_mean_matches_scipy():
    maps = [torch.rand(1, 1, 5, 7) + 0.01 for _ in range(4)]
    expected = hmean(np.stack([m.numpy() for m in maps]), axis=0)
    assert np.allclose(harmonic_mean(maps).numpy(), expected, rtol=1e-5)
    zero = torch.zeros(1, 1, 5, 7)
    assert harmonic_mean([zero, maps[0]]).abs().max() < 1e-6  # a zero anywhere gives zero, not NaN


def test_unet_evaluations_count_cells_and_steps():
    assert denoising_steps(50, 0.4) == 20
    assert unet_evaluations((1, 2, 4, 8), 50, 0.4) == (1 + 4 + 16 + 64 + 1) * 20
    assert unet_evaluations((1, 2), 4, 0.5, prototype=False) == 5 * 2


def scorer(perceptual, image):
    reference = perceptual.stages(image)

    def distance(inpainted):
        return distance_map(perceptual, reference, perceptual.stages(inpainted), SIZE)

    return distance


def test_an_oracle_inpainter_puts_the_highest_scores_on_a_pasted_anomaly(backbone, perceptual):
    clean = stripes(0)
    anomalous = clean.clone()
    anomalous[:, :, 36:48, 14:26] = torch.tensor([0.98, 0.1, 0.1])[:, None, None]
    truth = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    truth[36:48, 14:26] = True
    bank = build_bank(backbone, stripes(1), (0, 90, 180, 270))
    proto = prototype_mask(error_map(psi(backbone, anomalous)[0], bank), SIZE)
    assert proto[0, 0][truth].float().mean() > 0.9  # the prototype mask covers the anomaly

    def oracle(masks):
        return clean.expand(len(masks), -1, -1, -1)

    out = score_image(oracle, scorer(perceptual, anomalous), multiscale_masks(SIZE, (1, 2, 4)), proto,
                      alpha=0.1, sigma=4.0, batch_size=5)
    amap = out["anomaly_map"][0, 0]
    peak = divmod(int(amap.argmax()), SIZE)
    assert truth[peak]
    kind = "lpips" if isinstance(perceptual, LPIPS) else "lite0"
    assert amap[truth].mean() > CONTRAST[kind] * amap[~truth].mean()
    d = perceptual_distance(perceptual, anomalous, clean)  # the oracle restores every cell: S^(k) = D for every k
    assert torch.allclose(out["ms_map"], d, rtol=1e-4, atol=1e-6)
    assert torch.allclose(out["pg_map"], proto * d)

    normal = score_image(lambda m: clean.expand(len(m), -1, -1, -1), scorer(perceptual, clean),
                         multiscale_masks(SIZE, (1, 2, 4)), None, alpha=0.1, sigma=4.0, batch_size=5)
    assert normal["anomaly_map"].max() < 1e-6 < amap.max()  # restoring a normal image changes nothing
    assert normal["pg_map"] is None


def test_fusion_and_batching(perceptual):
    image, other = stripes(2), stripes(3)

    def patch_in(masks):  # inpaints each mask with `other`: the result depends on the mask
        return image * (1 - masks) + other * masks

    masks, proto = multiscale_masks(SIZE, (1, 2)), torch.zeros(1, 1, SIZE, SIZE)
    proto[..., :20, :] = 1
    one = score_image(patch_in, scorer(perceptual, image), masks, proto, alpha=0.25, sigma=0.0, batch_size=1)
    many = score_image(patch_in, scorer(perceptual, image), masks, proto, alpha=0.25, sigma=0.0, batch_size=6)
    assert torch.allclose(one["anomaly_map"], many["anomaly_map"], atol=1e-6)
    assert torch.allclose(one["anomaly_map"], 0.75 * one["ms_map"] + 0.25 * one["pg_map"])
    assert one["pg_map"][..., 20:, :].abs().max() == 0  # S_pg lives inside M^(p) only


def test_perceptual_loss_is_zero_for_equal_images_and_has_gradients(perceptual):
    a, b = stripes(4), stripes(5).requires_grad_(True)
    assert perceptual_loss(perceptual, a, a) == 0
    loss = perceptual_loss(perceptual, b, a)
    loss.backward()
    assert loss > 0 and b.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in perceptual.parameters())
