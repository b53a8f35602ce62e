"""Loading the SD inpainting folder: offline, clear errors for what is missing or of the wrong kind."""

from __future__ import annotations

import os
import shutil

import pytest

from nipad.errors import ConfigError
from nipad.models.anomalysd.pipeline import load_sd

from anomalysd_tiny_sd import save_tiny_sd


def test_loads_the_parts_offline_and_frozen(tiny_sd):
    parts = load_sd(tiny_sd)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert parts.unet.config.in_channels == 9 and parts.vae_scale_factor == 4 and parts.latent_multiple == 8
    assert not any(p.requires_grad for m in (parts.unet, parts.vae, parts.text_encoder) for p in m.parameters())
    assert parts.ddim().config.num_train_timesteps == 100
    parts.check_size(64)
    with pytest.raises(ConfigError, match="multiple of 8"):
        parts.check_size(60)


def test_what_to_provide_without_a_path(tmp_path):
    with pytest.raises(ConfigError, match="--sd-model PATH.*inpainting"):
        load_sd(None)
    with pytest.raises(ConfigError, match="not a folder"):
        load_sd(tmp_path / "nowhere")


def test_missing_parts_are_named(tiny_sd, tmp_path):
    copy = shutil.copytree(tiny_sd, tmp_path / "sd")
    shutil.rmtree(copy / "tokenizer")
    shutil.rmtree(copy / "scheduler")
    with pytest.raises(ConfigError, match="lacks tokenizer/, scheduler/"):
        load_sd(copy)


def test_a_text_to_image_unet_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="4 input channels, not 9"):
        load_sd(save_tiny_sd(tmp_path / "sd", in_channels=4))
