import pytest
import torch

from nipad.errors import ConfigError
from nipad.models.config import ModelConfig, preset
from nipad.models.detector import Detector, image_score

TINY = dict(image_size=64, hidden_dim=32, heads=4, encoder_layers=1, decoder_layers=1, ffn_dim=64, refiner_channels=16)


@pytest.mark.parametrize("w", [0.0, 0.5, 1.0])
def test_the_anomaly_map_weights_the_reconstruction_and_refiner_maps_by_the_fusion_weight(w):
    torch.manual_seed(0)
    detector = Detector(ModelConfig(fusion_weight=w, **TINY)).eval()
    detector.fusion_scale.fill_(3.0)
    features = torch.randn(2, detector.extractor.out_channels, 4, 4)
    rec = features + torch.randn_like(features)
    out = detector.score_maps(features, rec)
    expected = (1 - w) * out["rec_map"] + w * 3.0 * out["ref_map"]
    assert torch.allclose(out["anomaly_map"], expected)
    assert torch.equal(out["pred_score"], image_score(out["anomaly_map"], detector.config.score_pool))


def test_the_cpu_and_paper_presets_fuse_half_and_half_as_the_authors_and_the_nipad_preset_validates():
    assert preset("cpu").fusion_weight == 0.5 and preset("paper").fusion_weight == 0.5
    assert preset("cpu").fusion == preset("paper").fusion == "fixed"
    assert preset("nipad").fusion == "validated" and preset("nipad").prompt_matching
    assert preset("nipad", "uniad").fusion == "validated" and not preset("nipad", "uniad").prompt_matching
    with pytest.raises(ConfigError, match=r"--fusion-weight must be in \[0, 1\], got 1.5"):
        ModelConfig(fusion_weight=1.5)
