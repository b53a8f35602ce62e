import numpy as np
import pytest

from nipad.data import open_dataset
from nipad.engine.calibration import ALL, Calibration, fit_thresholds
from nipad.engine.trainer import split_calibration
from nipad.errors import CheckpointError


def test_thresholds_meet_the_false_alarm_rate_and_normalise_to_one_half():
    rng = np.random.default_rng(0)
    scores, maps = rng.normal(size=1000), rng.random((10, 20, 20))
    t = fit_thresholds(scores, maps, 0.01)
    assert (scores > t.image_threshold).mean() <= 0.01 and (scores >= t.image_threshold).mean() >= 0.01
    assert (maps > t.pixel_threshold).mean() <= 0.01
    cal = Calibration(0.01, {"a": t, ALL: t}, "test")
    out = cal.apply(np.array([t.image_threshold, t.image_max + 100, t.image_min - 100]), maps[:3], ["a", "b", None])
    assert out["pred_score_normalized"].tolist() == [0.5, 1.0, 0.0]
    assert out["pred_label"].tolist() == [False, True, False]  # anomalous means above the threshold
    assert out["pred_mask"].shape == (3, 20, 20) and out["pred_mask"].mean() < 0.05


def test_calibration_round_trip_and_missing_file(tmp_path):
    t = fit_thresholds(np.arange(10.0), np.ones((2, 4, 4)), 0.1)
    Calibration(0.1, {ALL: t}, "x").save(tmp_path)
    back = Calibration.load(tmp_path)
    assert back.for_class("unknown") == t and back.rate == 0.1
    with pytest.raises(CheckpointError, match="nipad calibrate"):
        Calibration.load(tmp_path / "nowhere")


def test_training_calibrates_on_held_out_normals_only(tiny_mvtec, tmp_path):
    import torch

    from nipad.engine.distributed import Context
    from nipad.engine.train_config import TrainConfig
    from nipad.engine.trainer import Trainer
    from nipad.models.config import ModelConfig

    data = open_dataset(tiny_mvtec)
    mcfg = ModelConfig(model="uniad", image_size=64, hidden_dim=32, heads=4, encoder_layers=1, decoder_layers=1,
                       ffn_dim=64)
    tcfg = TrainConfig(epochs=1, batch_size=4, calibration_fraction=0.25)
    Trainer(mcfg, tcfg, tmp_path, Context(0, 1, torch.device("cpu")), log=lambda *a: None).fit(data.train, ["x"])
    cal = Calibration.load(tmp_path)
    _, held = split_calibration(data.train, 0.25, tcfg.seed)
    assert cal.classes["dots"].n_images == sum(s.class_name == "dots" for s in held) == 3
    assert cal.classes[ALL].n_images == len(held) and "held-out" in cal.source
    assert cal.rate == 0.01
