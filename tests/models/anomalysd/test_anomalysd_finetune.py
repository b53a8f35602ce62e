"""AnomalySD fine-tuning on the tiny SD model: augmentations, the inpainting loss, what each stage changes, a stage
restarted from its saved epoch and optimizer."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from nipad.models.anomalysd.config import FinetuneConfig
from nipad.models.anomalysd.finetune import (
    ShotAugmenter,
    StageStart,
    decoder_parameters,
    finetune_decoder,
    finetune_unet,
    inpainting_loss,
)
from nipad.models.anomalysd.perceptual import create_perceptual
from nipad.models.anomalysd.pipeline import load_sd


def object_shots(n: int = 2, size: int = 64) -> torch.Tensor:
    """Bright squares on a dark background (a clear foreground)."""
    shots = torch.full((n, 3, size, size), 30, dtype=torch.uint8)
    for i in range(n):
        shots[i, :, 16 + 4 * i:44 + 4 * i, 18:46] = torch.tensor([220, 180, 60], dtype=torch.uint8)[:, None, None]
    return shots


def test_augmentations_move_the_foreground_with_the_image():
    torch.manual_seed(0)
    augment = ShotAugmenter(object_shots(), FinetuneConfig(rotation=30, scale=(0.8, 1.2), brightness=0.2))
    assert torch.stack(augment.foregrounds).float().mean() == pytest.approx((28 * 28) / 64**2, rel=0.05)
    for _ in range(3):
        images, fgs = augment([0, 1])
        assert images.shape == (2, 3, 64, 64) and fgs.shape == (2, 64, 64) and fgs.dtype == torch.bool
        assert images.min() >= 0 and images.max() <= 1
        bright = images[:, 0] > 0.4
        assert ((bright & fgs).sum() / (bright | fgs).sum()) > 0.85


def test_the_inpainting_loss_falls_on_a_fixed_batch(tiny_sd):
    parts = load_sd(tiny_sd)
    parts.unet.requires_grad_(True).train()
    scheduler = parts.ddpm()
    images = object_shots().float() / 255
    masks = torch.zeros(2, 1, 64, 64)
    masks[:, :, 8:40, 8:40] = 1
    states = torch.randn(2, parts.tokenizer.model_max_length, 16)
    optimizer = torch.optim.Adam(parts.unet.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        torch.manual_seed(0)  # the same noise and timesteps every step
        loss = inpainting_loss(parts, scheduler, images, masks, states)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_each_stage_changes_only_its_own_weights(tiny_sd):
    torch.manual_seed(0)
    parts = load_sd(tiny_sd)
    unet_before = {k: v.clone() for k, v in parts.unet.state_dict().items()}
    vae_before = {k: v.clone() for k, v in parts.vae.state_dict().items()}
    cfg = FinetuneConfig(epochs=2, decoder_epochs=2, batch_size=2, lr=1e-3)
    shots, owners = object_shots(3), torch.tensor([0, 0, 1])
    states = [torch.randn(2, 24, 16), torch.randn(3, 24, 16)]
    history = finetune_unet(parts, shots, owners, states, cfg, log=lambda _: None)
    assert [h["epoch"] for h in history] == [1, 2] and all(np.isfinite(h["loss"]) for h in history)
    assert any(not torch.equal(v, parts.unet.state_dict()[k]) for k, v in unet_before.items())
    assert not parts.unet.training and not any(p.requires_grad for p in parts.unet.parameters())

    history = finetune_decoder(parts, create_perceptual("lpips"), shots, cfg, log=lambda _: None)
    assert [h["stage"] for h in history] == ["decoder", "decoder"]
    tuned = set(decoder_parameters(parts))
    changed = {k for k, v in parts.vae.state_dict().items() if not torch.equal(v, vae_before[k])}
    assert changed and changed <= tuned
    assert all(k.startswith(("decoder.", "post_quant_conv.")) for k in tuned)
    assert not any(p.requires_grad for p in parts.vae.parameters())


def test_a_stage_restarted_from_its_saved_state_ends_as_one_never_stopped(tiny_sd):
    cfg = FinetuneConfig(epochs=3, batch_size=2, lr=1e-3)
    shots, owners = object_shots(3), torch.tensor([0, 0, 1])
    states = [torch.randn(2, 24, 16), torch.randn(3, 24, 16)]
    whole = load_sd(tiny_sd)
    full_history = finetune_unet(whole, shots, owners, states, cfg, log=lambda _: None)

    saved = {}

    def checkpoint(stage, epoch, optimizer, last):
        if epoch == 1:
            saved.update(optimizer=copy.deepcopy(optimizer.state_dict()), weights=copy.deepcopy(
                parts.unet.state_dict()))

    parts = load_sd(tiny_sd)
    history: list[dict] = []
    finetune_unet(parts, shots, owners, states, FinetuneConfig(epochs=1, batch_size=2, lr=1e-3),
                  log=lambda _: None, history=history, checkpoint=checkpoint)
    resumed = load_sd(tiny_sd)  # a new process: the pretrained model, then the saved state
    resumed.unet.load_state_dict(saved["weights"])
    new = finetune_unet(resumed, shots, owners, states, cfg, log=lambda _: None,
                        start=StageStart(1, saved["optimizer"]), history=history)
    assert [h["epoch"] for h in new] == [2, 3] and history == full_history
    assert all(torch.equal(v, resumed.unet.state_dict()[k]) for k, v in whole.unet.state_dict().items())
    other = load_sd(tiny_sd)
    other.unet.load_state_dict(saved["weights"])
    finetune_unet(other, shots, owners, states, cfg, log=lambda _: None, start=StageStart(1))  # without Adam's state
    assert any(not torch.equal(v, other.unet.state_dict()[k]) for k, v in whole.unet.state_dict().items())
