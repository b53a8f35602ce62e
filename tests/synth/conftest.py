import numpy as np
import pytest


@pytest.fixture
def noise_image() -> np.ndarray:
    """64x48 uniform RGB noise: every crop is unique, so pasted pixels can be traced back to their source."""
    return np.random.default_rng(1234).integers(0, 256, size=(64, 48, 3), dtype=np.uint8)
