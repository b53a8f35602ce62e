import numpy as np
import pytest

from nipad.data import open_dataset
from nipad.engine.calibration import ALL, Calibration, fit_thresholds
from nipad.errors import CheckpointError
from nipad.runs.split import split_calibration


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
    from nipad.models.onenip.model_config import ModelConfig

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


def test_manual_image_thresholds_replace_the_calibrated_ones_and_map_to_one_half():
    from nipad.errors import ConfigError

    t = fit_thresholds(np.arange(10.0), np.ones((2, 4, 4)), 0.1)
    cal = Calibration(0.1, {"a": t, "b": t, ALL: t}, "x")
    manual = cal.with_manual(["3", "b=7.5", "c=-1"], known=["c"])
    assert [manual.for_class(n).image_threshold for n in ("a", "b", "c", None)] == [3.0, 7.5, -1.0, 3.0]
    assert {x.method for x in manual.classes.values()} == {"manual"} and cal.classes["a"] == t  # a copy
    assert manual.for_class("b").pixel_threshold == t.pixel_threshold
    out = manual.apply(np.array([3.0, 3.5, 7.5, 8.0]), np.ones((4, 4, 4)), ["a", "a", "b", "b"])
    assert out["pred_label"].tolist() == [False, True, False, True]
    assert out["pred_score_normalized"][[0, 2]].tolist() == [0.5, 0.5]
    assert cal.with_manual(None) is cal and cal.with_manual([]) is cal
    with pytest.raises(ConfigError, match=r"no class 'nope' \(its classes: a, b\)"):
        cal.with_manual(["nope=1"])
    for bad in ("nan", "a=inf", "-inf", "a=", "abc", "=1"):
        with pytest.raises(ConfigError, match="--threshold"):
            cal.with_manual([bad])
    with pytest.raises(ConfigError, match="twice"):
        cal.with_manual(["a=1", "a=2"])
    with pytest.raises(ConfigError, match="not a finite number"):
        cal.with_image_thresholds({"a": float("nan")})


def test_calibration_json_records_each_method_and_old_files_read_as_rate(tmp_path):
    from dataclasses import asdict, replace

    t = fit_thresholds(np.arange(10.0), np.ones((2, 4, 4)), 0.1)
    Calibration(0.1, {"a": replace(t, method="f1"), ALL: t}, "x").save(tmp_path)
    back = Calibration.load(tmp_path)
    assert back.classes["a"].method == "f1" and back.classes[ALL].method == "rate"
    old = {"target_false_alarm_rate": 0.1, "source": "x",
           "classes": {ALL: {k: v for k, v in asdict(t).items() if k != "method"}}}
    assert Calibration.from_dict(old).classes[ALL].method == "rate"
    with pytest.raises(ValueError, match="unknown threshold method"):
        Calibration.from_dict({**old, "classes": {ALL: {**asdict(t), "method": "guess"}}})
