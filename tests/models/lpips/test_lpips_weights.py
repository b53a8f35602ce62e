"""Reading the converted LPIPS weights: the file setup.sh wrote passes its checks; missing, unreadable, reshaped or
altered files are one-line errors naming the fix."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from nipad.errors import CheckpointError
from nipad.models.lpips.weights import ENV, SHAPES, available, load_weights, weights_path


def test_the_converted_file_is_in_place_and_passes_its_checks():
    assert available(), f"{weights_path()} is missing: run `bash scripts/setup.sh`"
    tensors = load_weights()
    assert {k: tuple(v.shape) for k, v in tensors.items()} == SHAPES


def test_the_environment_variable_names_another_place(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, str(tmp_path / "w.safetensors"))
    assert weights_path() == tmp_path / "w.safetensors" and not available()
    with pytest.raises(CheckpointError, match=r"are missing: run `bash scripts/setup.sh`.*--perceptual lite0"):
        load_weights()


def test_unreadable_reshaped_or_altered_weights_are_refused(tmp_path):
    good = load_weights()
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="unreadable"):
        load_weights(tmp_path / "junk.safetensors")
    reshaped = {**good, "lins.0.weight": good["lins.0.weight"].reshape(64, 1, 1, 1)}
    altered = {**good, "features.0.bias": good["features.0.bias"] + 1e-6}
    for name, tensors, message in (("reshaped", reshaped, "does not hold"), ("altered", altered, "other LPIPS")):
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp_path / f"{name}.safetensors"))
        with pytest.raises(CheckpointError, match=message):
            load_weights(tmp_path / f"{name}.safetensors")
    assert torch.equal(load_weights()["features.0.bias"], good["features.0.bias"])
