"""The frozen backbone: bundled Lite weights really load, it stays frozen and in eval, local weights and errors."""

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from nipad.errors import CheckpointError, ConfigError
from nipad.models.backbone import (
    Backbone,
    create_backbone,
    lite_weights_path,
    load_timm_state_dict,
)


@pytest.fixture(scope="module")
def lite0() -> Backbone:
    return create_backbone("lite0")


def test_lite0_weights_assign_every_tensor_and_change_the_classifier():
    path = lite_weights_path("lite0")
    original = torch.load(path, map_location="cpu", weights_only=True)
    mapped = load_timm_state_dict("tf_efficientnet_lite0", path)
    assert len(original) == len(mapped) == 296
    torch.manual_seed(0)
    random_model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    loaded_model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    loaded_model.load_state_dict(mapped, strict=True)
    state = loaded_model.state_dict()
    for src, dst in [
        ("_conv_stem.weight", "conv_stem.weight"),
        ("_blocks.0._depthwise_conv.weight", "blocks.0.0.conv_dw.weight"),
        ("_blocks.5._bn1.running_var", "blocks.3.0.bn2.running_var"),
        ("_fc.bias", "classifier.bias"),
    ]:
        assert torch.equal(state[dst], original[src])
    x = torch.rand(1, 3, 96, 96) * 2 - 1
    with torch.no_grad():
        assert not torch.allclose(loaded_model(x), random_model(x), atol=1e-3)


def test_lite0_features_shapes_and_normalisation(lite0):
    assert lite0.channels == [16, 24, 40, 112]
    assert lite0.strides == [2, 4, 8, 16]
    assert lite0.mean == lite0.std == (0.5, 0.5, 0.5)
    feats = lite0(torch.rand(1, 3, 224, 224))
    assert [tuple(f.shape[1:]) for f in feats] == [(16, 112, 112), (24, 56, 56), (40, 28, 28), (112, 14, 14)]


def test_truncated_features_equal_timm_features_only_on_normalised_input(lite0):
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False, features_only=True,
                                  out_indices=(0, 1, 2, 3))
    mapped = load_timm_state_dict("tf_efficientnet_lite0", lite_weights_path("lite0"))
    reference.load_state_dict({k: v for k, v in mapped.items() if k in reference.state_dict()})
    reference.eval()
    x = torch.rand(2, 3, 64, 80)
    with torch.no_grad():
        expected = reference((x - 0.5) / 0.5)
    got = lite0(x)
    assert len(got) == len(expected) == 4
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)


def test_frozen_and_stays_in_eval(lite0):
    assert all(not p.requires_grad for p in lite0.parameters())
    stats_before = lite0.features.bn1.running_mean.clone()
    lite0.train()
    assert not lite0.training
    assert all(not m.training for m in lite0.modules())
    x = torch.rand(4, 3, 64, 64)
    first, second = lite0(x)[-1], lite0(x)[-1]
    assert torch.equal(first, second)
    assert torch.equal(lite0.features.bn1.running_mean, stats_before)
    torch.testing.assert_close(lite0(x[:1])[-1], first[:1], atol=1e-4, rtol=1e-4)  # batch statistics unused


def test_fingerprint_stable_and_tracks_weights(lite0, tmp_path):
    assert lite0.fingerprint == create_backbone("tf_efficientnet_lite0").fingerprint
    state = torch.load(lite_weights_path("lite0"), map_location="cpu", weights_only=True)
    state["_conv_stem.weight"] = state["_conv_stem.weight"] + 1.0
    changed = tmp_path / "lite0-changed.pth"
    torch.save(state, changed)
    other = create_backbone("lite0", weights=changed)
    assert other.fingerprint != lite0.fingerprint
    assert other.fingerprint.startswith("tf_efficientnet_lite0-")


def _random_b0_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return timm.create_model("efficientnet_b0", pretrained=False).state_dict()


def test_local_timm_weights_as_safetensors_load_by_name(tmp_path):
    state = _random_b0_state()
    path = tmp_path / "b0.safetensors"
    save_file(state, str(path))
    backbone = create_backbone("efficientnet_b0", weights=path)
    assert torch.equal(backbone.features.conv_stem.weight, state["conv_stem.weight"])
    assert backbone.mean == pytest.approx((0.485, 0.456, 0.406))
    assert backbone.channels == [16, 24, 40, 112]


def test_local_weights_in_other_naming_pair_in_order_even_without_bn_counters(tmp_path):
    state = _random_b0_state()
    renamed = {f"_other.{i}": v for i, (k, v) in enumerate(state.items()) if not k.endswith("num_batches_tracked")}
    path = tmp_path / "b0-other-naming.pth"
    torch.save(renamed, path)
    backbone = create_backbone("efficientnet_b0", weights=path)
    assert torch.equal(backbone.features.blocks[1][0].conv_pwl.weight, state["blocks.1.0.conv_pwl.weight"])
    assert torch.equal(backbone.features.bn1.running_var, state["bn1.running_var"])


def test_shape_or_count_mismatch_raises_checkpoint_error_naming_the_file(tmp_path):
    state = _random_b0_state()
    swapped = dict(state)
    swapped["conv_stem.weight"] = torch.zeros(8, 3, 3, 3)
    bad_shape = tmp_path / "bad-shape.pth"
    torch.save(swapped, bad_shape)
    with pytest.raises(CheckpointError, match="bad-shape.pth"):
        create_backbone("efficientnet_b0", weights=bad_shape)
    short = tmp_path / "short.pth"
    torch.save({f"k{i}": v for i, v in enumerate(list(state.values())[:-3])}, short)
    with pytest.raises(CheckpointError, match="short.pth"):
        create_backbone("efficientnet_b0", weights=short)
    with pytest.raises(CheckpointError, match="missing.pth"):
        create_backbone("efficientnet_b0", weights=tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.safetensors"):
        create_backbone("efficientnet_b0", weights=garbage)


def test_config_errors_for_missing_weights_and_unknown_names():
    with pytest.raises(ConfigError, match="weights=PATH"):
        create_backbone("tf_efficientnet_b4")
    with pytest.raises(ConfigError, match="lite0") as info:
        create_backbone("resnet50")
    assert "tf_efficientnet_b4" in str(info.value)
    assert isinstance(lite_weights_path("lite2"), Path) and lite_weights_path("lite2").is_file()
