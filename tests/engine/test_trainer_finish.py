"""The end of OneNIP / UniAD training: the fusion set from one pass over the validation images, whose served scores
are those the detector itself gives once the fusion is set."""

import pytest
import torch

from nipad.engine.trainer_finish import (
    MAP_KEYS,
    detector_outputs,
    fused_scores,
    half_range,
    refiner_stalled,
    set_fusion,
)
from nipad.models.onenip.detector import Detector
from nipad.models.onenip.model_config import ModelConfig

CPU = torch.device("cpu")
TINY = dict(image_size=64, hidden_dim=32, heads=4, encoder_layers=1, decoder_layers=1, ffn_dim=64, refiner_channels=16)
SETUPS = {
    "validated, matching": dict(fusion="validated", prompt_matching=True, score_map="match"),
    "fixed, refiner": dict(fusion_weight=0.5),
    "uniad": dict(model="uniad"),
}

pytestmark = pytest.mark.usefixtures("one_thread")


def _detector(**settings) -> Detector:
    """An untrained tiny detector with one class of two prompts, in eval mode."""
    torch.manual_seed(0)
    detector = Detector(ModelConfig(**{**TINY, **settings})).eval()
    images = torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8)
    detector.prompts.add("part", detector.features(images).float())
    return detector


def _features(detector: Detector, n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 255, (n, 3, 64, 64), dtype=torch.uint8, generator=generator)
    return detector.features(images).half()  # stored as the trainer's feature banks are


def test_refiner_stalled_compares_the_dice_loss_with_an_empty_maps():
    assert refiner_stalled({"dice": 0.499, "dice_empty": 0.5})
    assert not refiner_stalled({"dice": 0.40, "dice_empty": 0.5})
    assert not refiner_stalled({"mse": 1.0})  # UniAD has no refiner


def test_half_range_is_the_middle_of_the_maps_span():
    assert half_range(torch.tensor([[3.0, -1.0], [0.5, 2.0]])) == 1.0


def test_scores_fused_from_stored_maps_are_the_detectors_own():
    detector = _detector(**SETUPS["validated, matching"])
    detector.map_weights.copy_(torch.tensor([0.2, 0.5, 0.3]))
    detector.map_shift.copy_(torch.tensor([0.1, -0.2, 0.3]))
    detector.score_weights.copy_(torch.tensor([0.4, 0.0, 0.6]))
    features = _features(detector, 5, seed=1)
    maps = detector_outputs(detector, features, CPU)
    assert set(maps) == set(MAP_KEYS) and all(maps[k] is not None for k in MAP_KEYS)
    served = detector_outputs(detector, features, CPU, ("pred_score",))["pred_score"]
    assert torch.equal(fused_scores(detector, maps, CPU), served)


@pytest.mark.parametrize("setup", SETUPS)
def test_the_validation_scores_are_the_served_scores_after_the_fusion_is_set(setup):
    detector = _detector(**SETUPS[setup])
    normal, pseudo = _features(detector, 12, seed=2), _features(detector, 12, seed=3)
    lines: list[str] = []
    (normal_scores, pseudo_scores), record = set_fusion(detector, normal, pseudo, CPU, lines.append)
    for features, scores in ((normal, normal_scores), (pseudo, pseudo_scores)):
        again = detector_outputs(detector, features, CPU, ("pred_score",))["pred_score"]
        assert scores.shape == (12,) and torch.allclose(scores, again, rtol=1e-6, atol=0)
    assert (record is not None) == (setup == "validated, matching") == bool(lines)
    if setup == "fixed, refiner":
        rec = torch.cat([detector_outputs(detector, f, CPU, ("rec_map",))["rec_map"] for f in (normal, pseudo)])
        assert float(detector.fusion_scale) == pytest.approx(float(rec.min() + rec.max()) / 2, rel=1e-6)
        assert float(detector.fusion_scale) != 1.0
