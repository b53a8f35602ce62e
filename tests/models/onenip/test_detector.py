import pytest
import torch

from nipad.errors import ConfigError
from nipad.models.onenip.detector import Detector, image_score
from nipad.models.onenip.model_config import ModelConfig, preset

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


def test_the_nipad_preset_matches_against_a_token_bank_and_scores_from_the_matching_map():
    config = preset("nipad", **TINY)
    assert config.match_coreset == 0.1 and config.score_map == "match"
    assert preset("nipad", prompt_matching=False).score_map == "anomaly"
    with pytest.raises(ConfigError, match="need prompt matching"):
        ModelConfig(score_map="match")
    torch.manual_seed(0)
    detector = Detector(config).eval()
    c = detector.extractor.out_channels
    detector.prompts.add("a", torch.randn(2, c, 4, 4))
    detector.prompts.add("b", torch.randn(1, c, 4, 4))
    class_a = torch.randn(6, c)
    detector.bank.load(class_a, torch.zeros(6, dtype=torch.long))  # class b has no bank rows: its prompts stand in
    bank, owners = detector.matching_bank()
    assert len(bank) == 6 + 16 and owners.tolist() == [0] * 6 + [1] * 16
    query = class_a[:1, :, None, None].expand(1, c, 4, 4).clone()  # every token is class a's first bank row
    assert detector.match(query, torch.tensor([0]))[0].abs().max() < 1e-2
    b_prompt = detector.prompts.features[2:3]
    assert detector.match(b_prompt, torch.tensor([2]))[0].abs().max() < 1e-2
    rec = torch.randn(1, c, 4, 4)
    out = detector.score_maps(query, rec, detector.match(query, torch.tensor([0])))
    standardised = (out["match_map"] - detector.map_shift[2]) / detector.map_scale[2]
    assert torch.allclose(out["pred_score"], image_score(standardised, config.score_pool))
    assert not torch.allclose(out["pred_score"], image_score(out["anomaly_map"], config.score_pool))
