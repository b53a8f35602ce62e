"""The AnomalySD fine-tuning state file: saved and read back, and refused when damaged."""

from __future__ import annotations

import pytest
import torch

from nipad.errors import CheckpointError
from nipad.runs.finetune_state import STATE, Saver, load_progress


def test_a_damaged_fine_tuning_checkpoint_is_refused(tmp_path):
    weights = {"unet.w": torch.arange(4096, dtype=torch.float32)}
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=1.0)
    Saver(tmp_path, "shots", lambda stage: weights, [], every_s=0)("unet", 1, optimizer, True)
    assert torch.equal(load_progress(tmp_path, "shots").weights["unet.w"], weights["unet.w"])
    data = bytearray((tmp_path / STATE).read_bytes())
    start = bytes(data).find(torch.arange(4096, dtype=torch.float32).numpy().tobytes()[:64])
    data[start + 400] ^= 0x40  # one weight's bits: torch.load would read it without complaint
    (tmp_path / STATE).write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="train_state.pt is corrupt"):
        load_progress(tmp_path, "shots")
