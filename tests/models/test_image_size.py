"""The input-size rule (multiple of 16, at least 64), written once and applied by OneNIP's and the baselines'
configs."""

import pytest

from nipad.errors import ConfigError
from nipad.models.baselines.patchcore import PatchCoreConfig
from nipad.models.image_size import check_image_size
from nipad.models.onenip.model_config import ModelConfig


def test_multiples_of_16_from_64_pass():
    assert [check_image_size(s) for s in (64, 80, 224, 512)] == [64, 80, 224, 512]


@pytest.mark.parametrize("size", [48, 72, 100, 0])
def test_other_sizes_are_refused_by_every_config_with_the_same_message(size):
    message = rf"--image-size must be a multiple of 16 and >= 64, got {size}$"
    for make in (check_image_size, lambda s: ModelConfig(image_size=s), lambda s: PatchCoreConfig(image_size=s)):
        with pytest.raises(ConfigError, match=message):
            make(size)
