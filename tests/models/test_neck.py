"""MFCN neck matches the authors' UpsamplingBilinear2d downsampling; FeatureExtractor sizes and uint8 input."""

import pytest
import torch
from torch import nn

from nipad.models.backbone import create_backbone
from nipad.models.neck import MFCN, FeatureExtractor


@pytest.fixture(scope="module")
def extractor() -> FeatureExtractor:
    return FeatureExtractor(create_backbone("lite0"), MFCN())


def test_mfcn_equals_upsampling_bilinear2d_by_stride_and_has_no_parameters():
    torch.manual_seed(0)
    channels, strides, side = [16, 24, 40, 112], [2, 4, 8, 16], 224
    maps = [torch.randn(2, c, side // s, side // s) for c, s in zip(channels, strides, strict=True)]
    out = MFCN()(maps)
    assert out.shape == (2, 192, 14, 14)
    assert list(MFCN().parameters()) == []
    start = 0
    for m, c, s in zip(maps, channels, strides, strict=True):
        expected = nn.UpsamplingBilinear2d(scale_factor=s / 16)(m)
        torch.testing.assert_close(out[:, start : start + c], expected)
        start += c


def test_feature_extractor_lite0_224_gives_192x14x14(extractor):
    assert extractor.out_channels == 192
    assert extractor.feature_size(224) == 14
    out = extractor(torch.rand(1, 3, 224, 224))
    assert out.shape == (1, 192, 14, 14)


def test_feature_size_matches_real_output_for_sizes_not_divisible_by_16(extractor):
    for side in (72, 90):
        out = extractor(torch.rand(1, 3, side, side))
        assert out.shape[-2:] == (extractor.feature_size(side),) * 2


def test_uint8_images_equal_float_images_in_unit_range(extractor):
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    torch.testing.assert_close(extractor(images), extractor(images.float() / 255.0))
