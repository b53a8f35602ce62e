"""MFCN neck matches the authors' UpsamplingBilinear2d downsampling; the pooled neck averages whole cells;
FeatureExtractor sizes, fingerprint and uint8 input."""

import pytest
import torch
from torch import nn

from nipad.errors import ConfigError
from nipad.models.backbone import create_backbone
from nipad.models.neck import MFCN, FeatureExtractor, PooledNeck, create_neck


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


def test_pooled_neck_averages_each_cell_of_a_constant_region_and_has_no_parameters():
    torch.manual_seed(0)
    maps = [torch.randn(2, c, 224 // s, 224 // s) for c, s in zip([16, 24, 40, 112], [2, 4, 8, 16], strict=True)]
    out = PooledNeck()(maps)
    assert out.shape == (2, 192, 14, 14)
    assert list(PooledNeck().parameters()) == []
    # away from the border, a token of the stride-2 map is the mean of its 8x8 cell widened by one pixel each side
    cell = maps[0][:, :, 8 * 5 - 1 : 8 * 6 + 1, 8 * 7 - 1 : 8 * 8 + 1]
    along = torch.tensor([1.0, 2, 3, 3, 3, 3, 3, 3, 2, 1])  # how many 3x3 windows of the cell cover each pixel
    weights = along[:, None] * along[None, :]
    expected = (cell * weights).sum(dim=(-2, -1)) / (9 * 64)
    torch.testing.assert_close(out[:, :16, 5, 7], expected)


def test_pooled_neck_keeps_a_constant_map_constant_up_to_the_border():
    maps = [torch.full((1, 4, 56, 56), 3.0), torch.full((1, 8, 14, 14), -1.0)]
    out = PooledNeck()(maps)
    torch.testing.assert_close(out[:, :4], torch.full((1, 4, 14, 14), 3.0))
    torch.testing.assert_close(out[:, 4:], torch.full((1, 8, 14, 14), -1.0))


def test_create_neck_by_name_and_unknown_names_are_refused():
    assert isinstance(create_neck("mfcn"), MFCN)
    assert isinstance(create_neck("pooled"), PooledNeck)
    with pytest.raises(ConfigError, match="unknown neck 'bilinear'"):
        create_neck("bilinear")


def test_fingerprint_names_the_neck(extractor):
    pooled = FeatureExtractor(extractor.backbone, PooledNeck())
    assert pooled.fingerprint != extractor.fingerprint
    assert pooled.fingerprint.startswith(extractor.backbone.fingerprint)


def test_pooled_neck_equals_adaptive_pooling_whether_or_not_the_sides_divide():
    torch.manual_seed(0)
    for sides in ([56, 28, 14], [36, 18, 9, 5]):
        maps = [torch.randn(1, 2, s, s) for s in sides]
        out = PooledNeck()(maps)
        local = [nn.functional.avg_pool2d(m, 3, stride=1, padding=1, count_include_pad=False) for m in maps]
        expected = torch.cat([nn.functional.adaptive_avg_pool2d(m, sides[-1]) for m in local], dim=1)
        torch.testing.assert_close(out, expected)
