"""Loading a local diffusers-format Stable Diffusion inpainting model; nothing is ever fetched from a hub.

The folder is what `StableDiffusionInpaintPipeline.save_pretrained` writes: unet/ (9 input channels: noisy latent,
masked-image latent, mask), vae/, text_encoder/ (CLIP), tokenizer/ and scheduler/.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nipad.errors import CheckpointError, ConfigError

PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
INPAINT_CHANNELS = 9
HELP = ("a local diffusers-format Stable Diffusion inpainting folder (unet/ with 9 input channels, vae/, "
        "text_encoder/, tokenizer/, scheduler/), e.g. a saved copy of stable-diffusion-2-inpainting; "
        "nothing is downloaded")


@dataclass
class SDParts:
    """The pipeline's components; `scheduler_config` rebuilds DDPM (training) and DDIM (inference) schedulers."""

    path: str
    # diffusers' UNet2DConditionModel and AutoencoderKL, typed Any: diffusers' annotations resolve neither their
    # nn.Module methods nor the attribute access to `config` (declared a dict) that the models are used through.
    unet: Any
    vae: Any
    text_encoder: nn.Module | None  # dropped once the prompts are encoded
    tokenizer: Any
    scheduler_config: dict[str, Any]

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def latent_multiple(self) -> int:
        """Image sides must be multiples of this: the VAE's downsampling times the UNet's."""
        return self.vae_scale_factor * 2 ** (len(self.unet.config.block_out_channels) - 1)

    def check_size(self, image_size: int) -> None:
        if image_size % self.latent_multiple:
            raise ConfigError(f"--image-size {image_size} does not fit the SD model in {self.path}: it must be a "
                              f"multiple of {self.latent_multiple} (e.g. 512)")

    def ddpm(self):
        from diffusers import DDPMScheduler
        return DDPMScheduler.from_config(self.scheduler_config)

    def ddim(self):
        from diffusers import DDIMScheduler
        return DDIMScheduler.from_config(self.scheduler_config)


def _quiet() -> None:
    """No download progress bars or low-memory-loading advice on the console."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    for log in (dlog, tlog):
        log.set_verbosity_error()
        log.disable_progress_bar()


def load_sd(path: str | Path | None, device: torch.device | str = "cpu") -> SDParts:
    """The SD inpainting components in `path` (frozen, eval mode) on `device`; clear errors for a wrong folder."""
    if not path:
        raise ConfigError(f"anomalysd needs --sd-model PATH: {HELP}")
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"--sd-model {root} is not a folder: pass {HELP}")
    missing = [p for p in PARTS if not (root / p).is_dir()]
    if missing:
        raise ConfigError(f"--sd-model {root} lacks {', '.join(p + '/' for p in missing)}: pass {HELP}")
    os.environ["HF_HUB_OFFLINE"] = "1"
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    _quiet()
    try:
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", local_files_only=True)
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", local_files_only=True)
        text_encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", local_files_only=True)
        tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", local_files_only=True)
        from diffusers import DDPMScheduler
        scheduler_config = dict(DDPMScheduler.load_config(root, subfolder="scheduler", local_files_only=True))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"cannot load the SD model in {root}: {err}") from err
    if unet.config.in_channels != INPAINT_CHANNELS:
        raise ConfigError(f"{root}/unet has {unet.config.in_channels} input channels, not {INPAINT_CHANNELS}: it is "
                          f"not an inpainting model; pass {HELP}")
    for module in (unet, vae, text_encoder):
        module.requires_grad_(False).eval().to(device)
    return SDParts(str(root), unet, vae, text_encoder, tokenizer, scheduler_config)
