"""The tiny SD inpainting model of the AnomalySD tests, saved once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from anomalysd_tiny_sd import save_tiny_sd


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    return save_tiny_sd(tmp_path_factory.mktemp("tiny_sd") / "sd-inpaint")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny tensors: one thread is faster than several on a shared, busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
