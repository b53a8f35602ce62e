import pytest
import torch

from nipad.models.onenip.losses import dice_loss
from nipad.models.onenip.model_config import ModelConfig, preset
from nipad.models.onenip.network import ReconstructionNet, feature_jitter
from nipad.models.onenip.objective import Objective

SMALL = dict(image_size=64, hidden_dim=32, heads=4, encoder_layers=1, decoder_layers=1, ffn_dim=64,
             refiner_channels=8, neighbour_size=1)


def test_shapes_for_both_models():
    feats = torch.randn(3, 24, 4, 4)
    for model in ("onenip", "uniad"):
        net = ReconstructionNet(ModelConfig(model=model, **SMALL), 24).eval()
        prompt = net.encode(feats[:1]) if model == "onenip" else None
        rec = net.decode(net.encode(feats), prompt)
        assert rec.shape == feats.shape
        logits = net.refine((rec - feats).abs())
        assert (logits is None) == (model == "uniad")
        if logits is not None:
            assert logits.shape == (3, 1, 64, 64)


def test_paper_preset_sizes_match_the_authors_model():
    config = preset("paper")
    assert (config.hidden_dim, config.heads, config.encoder_layers, config.decoder_layers) == (256, 8, 4, 4)
    assert config.feature_size == 14 and config.window == 7
    net = ReconstructionNet(config, 272)
    n = sum(p.numel() for p in net.parameters())
    # the authors' OneNIP with B4's 272 channels (../shared/docs/onenip-spec.md)
    assert abs(n - 8.37e6) / 8.37e6 < 0.01, n


def test_jitter_scale_follows_token_norm():
    torch.manual_seed(0)
    tokens = torch.randn(1, 4000, 192) * 3
    noisy = feature_jitter(tokens, 20.0, 1.0)
    ratio = (noisy - tokens).norm(dim=-1) / tokens.norm(dim=-1)
    assert abs(ratio.mean().item() - 20 / 192 ** 0.5) < 0.05
    assert torch.equal(feature_jitter(tokens, 0.0, 1.0), tokens)


def test_dice_loss_values():
    target = torch.zeros(2, 1, 8, 8)
    target[1, :, :4] = 1
    perfect = torch.where(target > 0, 50.0, -50.0)
    t = 32.0  # anomalous pixels of sample 1; sample 0 is normal and predicted 0: loss 0
    assert abs(dice_loss(perfect, target).item() - (1 - (t + 1) / (2 * t + 1)) / 2) < 1e-5
    for off in (torch.where(target > 0, 0.5, -50.0), torch.where(target > 0, 50.0, 0.0)):
        assert dice_loss(off, target) > dice_loss(perfect, target)
    assert dice_loss(-perfect, target).item() > 0.9
    normal = torch.full((1, 1, 8, 8), 0.0)  # p = 0.5 everywhere on a normal sample: 1 - 1/(64 * 0.25 + 1)
    assert abs(dice_loss(normal, torch.zeros(1, 1, 8, 8)).item() - (1 - 1 / 17)) < 1e-6


def test_objective_trains_restoration_and_refiner():
    torch.manual_seed(0)
    net = ReconstructionNet(ModelConfig(**SMALL), 24)
    objective = Objective(net)
    clean, prompt, synth = torch.randn(2, 24, 4, 4), torch.randn(2, 24, 4, 4), torch.randn(2, 24, 4, 4)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 10:30, 10:30] = 1
    losses = objective(clean, prompt, synth, mask)
    assert set(losses) == {"mse", "dice", "dice_empty", "loss"}
    # an empty map scores 1 - 1/(T + 1) on each pseudo-anomalous sample (T = 400 mask pixels), 0 on the clean ones
    assert losses["dice_empty"].item() == pytest.approx((1 - 1 / 401) / 2)
    assert not losses["dice_empty"].requires_grad
    losses["loss"].backward()
    assert net.refiner.predictor.weight.grad.abs().sum() > 0
    assert net.input_proj.weight.grad.abs().sum() > 0
