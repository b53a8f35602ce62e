"""The AnomalySD detector from loaded SD parts, and the fine-tuned tensors it saves and puts back (named as in a
run's model.safetensors: unet.* and vae.{decoder,post_quant_conv}.*)."""

from __future__ import annotations

from pathlib import Path

import torch

from nipad.errors import CheckpointError
from nipad.models.anomalysd.config import AnomalySDConfig
from nipad.models.anomalysd.finetune import decoder_parameters
from nipad.models.anomalysd.inference import AnomalySD
from nipad.models.anomalysd.perceptual import PerceptualModule, create_perceptual
from nipad.models.anomalysd.pipeline import SDParts
from nipad.models.anomalysd.text_prompts import encode_prompts
from nipad.models.backbone import create_backbone


def build_model(config: AnomalySDConfig, parts: SDParts, prompts: dict[str, list[str]], shots: torch.Tensor,
                owners: torch.Tensor, classes: list[str], device: torch.device | str,
                perceptual: PerceptualModule | None = None) -> AnomalySD:
    """The AnomalySD detector from loaded SD parts: class conditions encoded, then the text encoder dropped; the
    perceptual distance is config.perceptual's unless given."""
    perceptual = (perceptual or create_perceptual(config.perceptual)).to(device)
    conditions = {c: encode_prompts(parts.text_encoder, parts.tokenizer, prompts[c]).mean(dim=0) for c in classes}
    parts.text_encoder = None
    backbone = create_backbone(config.backbone, config.backbone_weights).to(device)
    by_class = {c: shots[owners == i].to(device) for i, c in enumerate(classes) if bool((owners == i).any())}
    return AnomalySD(config, parts, backbone, perceptual, conditions, by_class).eval()


def tuned_weights(parts: SDParts, unet: bool, decoder: bool) -> dict[str, torch.Tensor]:
    """What fine-tuning changes: the whole UNet and, when the decoder was tuned, the VAE decoder."""
    tensors = {f"unet.{k}": v for k, v in parts.unet.state_dict().items()} if unet else {}
    if decoder:
        tensors.update({f"vae.{k}": v for k, v in decoder_parameters(parts).items()})
    return tensors


def load_tuned(parts: SDParts, tensors: dict[str, torch.Tensor], source: Path, sd_model: str) -> None:
    """Put saved unet.* / vae.* tensors into the SD parts (the UNet whole, the VAE in part)."""
    for prefix, module, strict in (("unet.", parts.unet, True), ("vae.", parts.vae, False)):
        state = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
        if not state:
            continue
        try:
            module.load_state_dict(state, strict=strict)
        except RuntimeError as err:
            raise CheckpointError(f"{source} does not fit the SD model in {sd_model} ({str(err)[:200]}); the run was "
                                  "made from another SD model") from err
