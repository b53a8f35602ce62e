"""Fine-tuning AnomalySD on the k normal shots of every class (paper section 4.1).

The denoising UNet learns to predict the noise of z_t from [z_t; E(masked image); downsampled mask] (eq. 8) with
a random prompt of the image's class, under random rectangles whose IoU with the image's estimated foreground
exceeds gamma (gamma from {0, 0.2, 0.5}); optionally the VAE decoder then learns to reconstruct the shots with
MSE + 0.1 x the perceptual loss (eq. 9). Each step sees freshly augmented shots: brightness, contrast, scale and
rotation (corners filled with the image's border colour).

Resumable: each epoch's randomness is seeded from (seed, stage, epoch), so a stage restarted from its epochs done and
Adam's state (a StageStart) tunes exactly as one never stopped; `checkpoint` is called after every epoch to save them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

from nipad.models.anomalysd.config import FinetuneConfig
from nipad.models.anomalysd.masks import estimate_foreground, training_mask
from nipad.models.anomalysd.perceptual import Perceptual, perceptual_loss
from nipad.models.anomalysd.pipeline import SDParts

STAGES = ("unet", "decoder")


@dataclass(frozen=True)
class StageStart:
    """Where a stage starts: its epochs already done and Adam's state then (None: a fresh optimizer)."""

    epoch: int = 0
    optimizer: dict[str, Any] | None = None


# checkpoint(stage, epochs done, optimizer, whether that was the stage's last epoch), after every epoch
Checkpoint = Callable[[str, int, torch.optim.Optimizer, bool], None]


class ShotAugmenter:
    """Random augmentations of the shots (uint8 (N, 3, S, S)) with their foreground masks moved along."""

    def __init__(self, shots: Tensor, cfg: FinetuneConfig) -> None:
        self.images = [tv_tensors.Image(s) for s in shots]  # indexing a batch of tv_tensors would drop the type
        self.foregrounds = [tv_tensors.Mask(torch.from_numpy(estimate_foreground(a)))
                            for a in shots.permute(0, 2, 3, 1).numpy()]
        border = torch.cat([shots[:, :, 0], shots[:, :, -1], shots[:, :, :, 0], shots[:, :, :, -1]], dim=2)
        self.affines = [v2.RandomAffine(degrees=cfg.rotation, scale=cfg.scale,
                                        fill={tv_tensors.Image: [int(c) for c in colour], tv_tensors.Mask: 0})
                        for colour in border.float().median(dim=2).values]
        self.color = v2.ColorJitter(brightness=cfg.brightness, contrast=cfg.contrast)

    def __call__(self, index: Sequence[int]) -> tuple[Tensor, Tensor]:
        """Augmented images (B, 3, S, S) in [0, 1] and foregrounds (B, S, S) bool of the shots at `index`."""
        images, foregrounds = [], []
        for i in index:
            image, fg = self.affines[i](self.images[i], self.foregrounds[i])
            images.append(self.color(image))
            foregrounds.append(fg)
        return torch.stack(images).float() / 255, torch.stack(foregrounds).bool()


def inpainting_loss(parts: SDParts, scheduler, images: Tensor, masks: Tensor, states: Tensor) -> Tensor:
    """Eq. 8 for a batch: images in [0, 1] (B, 3, S, S), masks (B, 1, S, S), prompt states (B, L, D)."""
    vae, unet = parts.vae, parts.unet
    scaling = float(vae.config.scaling_factor)
    with torch.no_grad():
        z = vae.encode(images * 2 - 1).latent_dist.sample() * scaling
        masked = vae.encode((images * (1 - masks) + 0.5 * masks) * 2 - 1).latent_dist.mode() * scaling
    small = F.interpolate(masks, size=z.shape[-2:], mode="nearest")
    noise = torch.randn_like(z)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z),), device=z.device)
    noisy = scheduler.add_noise(z, noise, t)
    target = {"epsilon": noise, "v_prediction": None, "sample": z}[scheduler.config.prediction_type]
    if target is None:
        target = scheduler.get_velocity(z, noise, t)
    pred = unet(torch.cat([noisy, masked, small], dim=1), t, encoder_hidden_states=states).sample
    return F.mse_loss(pred.float(), target.float())


def _epochs(n_shots: int, cfg: FinetuneConfig, epochs: int, step: Callable[[list[int], np.random.Generator], Tensor],
            params, stage: str, log: Callable[[str], None], start: StageStart | None, history: list[dict] | None,
            checkpoint: Checkpoint | None) -> list[dict]:
    """Run epochs start.epoch .. epochs - 1 over the shots in shuffled batches, one Adam step per batch, each epoch
    seeded from (seed, stage, epoch); append each epoch's mean loss to `history` and return the new entries."""
    start = start or StageStart()
    history = [] if history is None else history
    optimizer = torch.optim.Adam(params, lr=cfg.lr)
    if start.optimizer is not None:
        optimizer.load_state_dict(start.optimizer)
    first, started, every = len(history), time.time(), max(1, epochs // 20)
    for epoch in range(start.epoch, epochs):
        torch.manual_seed(cfg.seed * 100_003 + STAGES.index(stage) * 10_007 + epoch)  # augmentations, noise, t
        rng = np.random.default_rng([cfg.seed, STAGES.index(stage), epoch])  # masks and prompts
        losses = []
        for index in torch.randperm(n_shots).split(cfg.batch_size):
            loss = step(index.tolist(), rng)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.append({"stage": stage, "epoch": epoch + 1, "loss": float(np.mean(losses))})
        if (epoch + 1) % every == 0 or epoch + 1 == epochs:
            log(f"{stage} epoch {epoch + 1}/{epochs}  loss {history[-1]['loss']:.4f}  ({time.time() - started:.0f} s)")
        if checkpoint is not None:
            checkpoint(stage, epoch + 1, optimizer, epoch + 1 == epochs)
    return history[first:]


def finetune_unet(parts: SDParts, shots: Tensor, owners: Tensor, prompt_states: Sequence[Tensor],
                  cfg: FinetuneConfig, log: Callable[[str], None] = print, start: StageStart | None = None,
                  history: list[dict] | None = None, checkpoint: Checkpoint | None = None) -> list[dict]:
    """Fine-tune parts.unet in place on the shots (uint8 (N, 3, S, S)) of classes `owners` (N,); prompt_states[c]
    holds the (n_c, L, D) encodings of class c's prompts, one drawn per image and step. Returns the epochs' losses."""
    device = next(parts.unet.parameters()).device
    augment = ShotAugmenter(shots, cfg)
    scheduler = parts.ddpm()
    unet = parts.unet.requires_grad_(True).train()
    if device.type == "cuda":
        unet.enable_gradient_checkpointing()

    def step(index: list[int], rng: np.random.Generator) -> Tensor:
        images, foregrounds = augment(index)
        masks = torch.from_numpy(np.stack([training_mask(fg.numpy(), cfg.gammas, rng)[0] for fg in foregrounds]))
        states = torch.stack([prompt_states[int(owners[i])][rng.integers(len(prompt_states[int(owners[i])]))]
                              for i in index])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return inpainting_loss(parts, scheduler, images.to(device), masks[:, None].float().to(device),
                                   states.to(device))

    try:
        return _epochs(len(shots), cfg, cfg.epochs, step, list(unet.parameters()), "unet", log, start, history,
                       checkpoint)
    finally:
        unet.requires_grad_(False).eval()


def decoder_parameters(parts: SDParts) -> dict[str, torch.nn.Parameter]:
    """The VAE decoder's parameters (with the post-quantisation conv that feeds it), named as in vae.state_dict()."""
    return {k: p for k, p in parts.vae.named_parameters() if k.startswith(("decoder.", "post_quant_conv."))}


def finetune_decoder(parts: SDParts, perceptual: Perceptual, shots: Tensor, cfg: FinetuneConfig,
                     log: Callable[[str], None] = print, start: StageStart | None = None,
                     history: list[dict] | None = None, checkpoint: Checkpoint | None = None) -> list[dict]:
    """Fine-tune the VAE decoder in place to reconstruct the augmented shots: MSE + w x perceptual (eq. 9)."""
    device = next(parts.vae.parameters()).device
    augment = ShotAugmenter(shots, cfg)
    params = list(decoder_parameters(parts).values())
    for p in params:
        p.requires_grad_(True)
    parts.vae.decoder.train()

    def step(index: list[int], rng: np.random.Generator) -> Tensor:
        images = augment(index)[0].to(device)
        with torch.no_grad():
            z = parts.vae.encode(images * 2 - 1).latent_dist.sample()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            rec = (parts.vae.decode(z).sample.float() + 1) / 2
        return F.mse_loss(rec, images) + cfg.perceptual_weight * perceptual_loss(perceptual, rec, images)

    try:
        return _epochs(len(shots), cfg, cfg.decoder_epochs, step, params, "decoder", log, start, history, checkpoint)
    finally:
        parts.vae.requires_grad_(False).eval()
