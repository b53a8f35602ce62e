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


def test_above_the_threshold_ignores_float_noise_across_batch_sizes():
    from nipad.engine.calibration import above

    threshold = np.float64(51.19256591796875)  # a OneNIP score; batch size 1 gave 51.192562103271484 for this image
    assert not above(np.array([threshold, threshold + 3.8e-6, threshold * (1 + 5e-7)]), threshold).any()
    assert above(np.array([threshold * (1 + 1e-5), threshold + 1.0]), threshold).all()
    assert above(np.array([-0.9]), -1.0) and not above(np.array([-1.0 + 5e-7]), -1.0)


def test_too_few_calibration_images_are_said_and_none_of_them_is_flagged():
    rng = np.random.default_rng(1)
    scores, maps = rng.normal(size=5), rng.random((5, 8, 8))
    t = fit_thresholds(scores, maps, 0.01)
    cal = Calibration(0.01, {"few": t, ALL: t}, "test")
    assert t.image_threshold == scores.max() and t.too_few(0.01)
    note = cal.too_few_note()
    assert "few (5 images)" in note and "100 needed" in note and "1 in 6" in note and ALL not in note
    assert not cal.apply(scores, maps, ["few"] * 5)["pred_label"].any()
    many = fit_thresholds(rng.normal(size=200), maps, 0.01)
    assert Calibration(0.01, {"many": many, ALL: many}, "test").too_few_note() is None
