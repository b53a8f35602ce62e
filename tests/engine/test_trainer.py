
import pytest
import torch

from nipad.data import open_dataset
from nipad.data.image_io import load_image
from nipad.engine.distributed import Context
from nipad.engine.evaluate import run_test
from nipad.engine.train_config import TrainConfig, lr_factor, schedule_steps
from nipad.engine.trainer import Trainer
from nipad.errors import CheckpointError, ConfigError, TrainingError
from nipad.models.onenip.model_config import ModelConfig
from nipad.models.prompt_pool import central
from nipad.runs import checkpoint
from nipad.runs.run_info import WEIGHTS
from nipad.runs.split import split_calibration

CPU = Context(0, 1, torch.device("cpu"))
TINY = dict(image_size=64, hidden_dim=32, heads=4, encoder_layers=1, decoder_layers=1, ffn_dim=64, refiner_channels=16)


def _train(run_dir, data, model="onenip", epochs=2, **kw):
    mcfg = ModelConfig(model=model, **TINY)
    tcfg = TrainConfig(epochs=epochs, batch_size=4, lr=1e-3, synthetic_pool=kw.pop("pool", 1), **kw)
    return Trainer(mcfg, tcfg, run_dir, CPU, log=lambda *a: None).fit(data.train, [str(data.root)])


def test_train_checkpoint_round_trip_and_test(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)
    detector = _train(tmp_path / "run", data)
    info = checkpoint.read_info(tmp_path / "run")
    assert info.finished and info.epochs_done == 2 and info.classes == ["dots", "stripes"]
    assert info.prompt_classes == ["dots", "stripes"]
    assert len(info.extra["history"]) == 2
    loaded, _ = checkpoint.load_detector(tmp_path / "run")
    images = torch.randint(0, 255, (3, 3, 64, 64), dtype=torch.uint8)
    a, b = detector.eval()(images), loaded(images)
    assert torch.allclose(a["anomaly_map"], b["anomaly_map"], atol=1e-5)
    assert float(loaded.fusion_scale) == pytest.approx(float(detector.fusion_scale)) and float(loaded.fusion_scale) > 0
    results, outputs = run_test(loaded, data.test, batch_size=4)
    assert set(results.per_class) == {"dots", "stripes"}
    assert results.n_images["dots"] == {"normal": 3, "anomalous": 4}
    assert results.eval_resolution == (64, 64)
    # the saturated red squares of tiny_mvtec are found (image) and located (pixel) by the two-epoch model
    assert results.mean["image_auroc"] > 0.9 and results.mean["pixel_auroc"] > 0.8
    assert outputs.skipped == []


def test_fusion_constant_spans_held_out_normals_and_their_pseudo_anomalies(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)
    detector = _train(tmp_path / "run", data).eval()
    _, held = split_calibration(data.train, TrainConfig().calibration_fraction, TrainConfig().seed)
    images = torch.stack([torch.from_numpy(load_image(s.image_path, 64)).permute(2, 0, 1) for s in held])
    normal = detector(images)["rec_map"]
    c_normal = float(normal.min() + normal.max()) / 2
    # c spans the pseudo-anomalous copies too, so it is not the normal images' own (max + min) / 2
    assert float(detector.fusion_scale) != pytest.approx(c_normal, rel=0.01)


def test_a_short_schedule_is_pointed_out(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)
    lines = []
    mcfg = ModelConfig(model="uniad", **TINY)
    tcfg = TrainConfig(epochs=1, batch_size=4)
    Trainer(mcfg, tcfg, tmp_path / "run", CPU, log=lines.append).fit(data.train, ["x"])
    train, _ = split_calibration(data.train, tcfg.calibration_fraction, tcfg.seed)
    steps = -(-len(train) // 4)
    assert any(f"note: only {steps} optimizer steps (1 epochs of {len(train)} images)" in line for line in lines)


def test_a_step_budget_trains_fewer_epochs_and_says_so(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)
    lines: list[str] = []
    tcfg = TrainConfig(epochs=5, batch_size=4, max_steps=3)
    Trainer(ModelConfig(model="uniad", **TINY), tcfg, tmp_path / "run", CPU, log=lines.append).fit(data.train, ["x"])
    train, _ = split_calibration(data.train, tcfg.calibration_fraction, tcfg.seed)
    epochs = -(-3 // -(-len(train) // 4))  # the fewest epochs of ceil(n / 4) steps that reach 3 steps
    info = checkpoint.read_info(tmp_path / "run")
    assert epochs < 5 and info.epochs_done == epochs and info.train["epochs"] == epochs
    assert any(f"{epochs} epochs instead of 5" in line for line in lines)


def test_each_class_prompt_is_its_most_typical_training_image(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)
    detector = _train(tmp_path / "run", data, epochs=1).eval()
    train, _ = split_calibration(data.train, TrainConfig().calibration_fraction, TrainConfig().seed)
    for c, name in enumerate(detector.prompts.class_names):
        images = torch.stack([torch.from_numpy(load_image(s.image_path, 64)).permute(2, 0, 1)
                              for s in train if s.class_name == name])
        with torch.no_grad():
            feats = detector.features(images).float()
        prompt = detector.prompts.features[detector.prompts.owners == c]
        distance = (feats - prompt).flatten(1).norm(dim=1)
        assert len(feats) > 2 and int(distance.argmin()) == central(feats, 1)[0]
        assert float(distance.min()) < 1e-2 * float(prompt.norm())


def test_prompt_selection_finds_the_class_without_being_told(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)
    detector = _train(tmp_path / "run", data, epochs=1).eval()
    good = [s for s in data.test if s.label == 0]
    from nipad.engine.evaluate import batches
    for batch, pred in batches(detector, good):
        assert pred["prompt_class"] == batch["class_name"]


def test_finished_run_is_not_overwritten(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)
    _train(tmp_path / "run", data, epochs=1)
    before = (tmp_path / "run" / WEIGHTS).read_bytes()
    with pytest.raises(ConfigError, match="finished run"):
        _train(tmp_path / "run", data, epochs=1)
    assert (tmp_path / "run" / WEIGHTS).read_bytes() == before


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)  # the lr drops at epoch 3, after the interruption: the schedule resumes too
    full = _train(tmp_path / "full", data, epochs=3)
    resumed = _train(_partial(tmp_path, data), data, epochs=3)
    for (k, a), b in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-5), k


def _partial(tmp_path, data):
    """A run of 3 planned epochs interrupted (KeyboardInterrupt) during epoch 3."""
    run = tmp_path / "partial"
    import nipad.engine.trainer as trainer_mod

    original = trainer_mod.Objective.forward
    calls = {"n": 0}
    steps_per_epoch = -(-len(split_calibration(data.train, 0.1, 133)[0]) // 4)

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > 2 * steps_per_epoch:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    trainer_mod.Objective.forward = flaky
    try:
        with pytest.raises(KeyboardInterrupt):
            _train(run, data, epochs=3)
    finally:
        trainer_mod.Objective.forward = original
    assert checkpoint.read_info(run).epochs_done == 2
    return run


def test_corrupt_checkpoint_is_a_clear_error(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)
    _train(tmp_path / "run", data, epochs=1, model="uniad")
    (tmp_path / "run" / WEIGHTS).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        checkpoint.load_detector(tmp_path / "run")
    with pytest.raises(CheckpointError, match="not a nipad run"):
        checkpoint.load_detector(tmp_path)


def test_fresh_pseudo_anomalies_every_step_train_too(tiny_mvtec, tmp_path):
    """synthetic_pool=0 (the paper preset's way): the backbone sees new pseudo anomalies at every step."""
    data = open_dataset(tiny_mvtec)
    _train(tmp_path / "run", data, epochs=1, pool=0)
    history = checkpoint.read_info(tmp_path / "run").extra["history"]
    assert len(history) == 1 and history[0]["dice"] > 0 and history[0]["mse"] > 0


def test_lr_factor_warms_up_linearly_then_drops_once():
    factors = [lr_factor(step, warmup=4, drop=6, gamma=0.1) for step in range(8)]
    assert factors == pytest.approx([0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.1, 0.1])
    assert [lr_factor(step, warmup=0, drop=2, gamma=0.1) for step in range(3)] == pytest.approx([1.0, 1.0, 0.1])


def test_warmup_takes_at_most_a_tenth_of_the_schedule():
    config = TrainConfig(epochs=30, warmup_steps=300, lr_drop_at=0.8)
    assert schedule_steps(config, 104) == (300, 24 * 104)  # the cpu preset on bottle + magnetic_tile
    assert schedule_steps(config, 5) == (15, 24 * 5)  # 150 steps in all: a 15-step warmup


def test_a_refiner_that_never_learned_is_warned_about(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)
    lines = []
    tcfg = TrainConfig(epochs=1, batch_size=4, lr=1e-12, synthetic_pool=1)
    Trainer(ModelConfig(**TINY), tcfg, tmp_path / "run", CPU, log=lines.append).fit(data.train, ["x"])
    last = checkpoint.read_info(tmp_path / "run").extra["history"][-1]
    assert 0 < last["dice_empty"] < last["dice"]
    assert any("warning: the refiner has not learned" in line for line in lines)


def test_the_prompt_pool_keeps_prompts_per_class_images_of_each_class(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)
    detector = _train(tmp_path / "run", data, epochs=1, prompt_neighbours=2, prompts_per_class=3).eval()
    train, _ = split_calibration(data.train, TrainConfig().calibration_fraction, TrainConfig().seed)
    for c, name in enumerate(detector.prompts.class_names):
        n = sum(s.class_name == name for s in train)
        assert int((detector.prompts.owners == c).sum()) == min(3, n)
    loaded, _ = checkpoint.load_detector(tmp_path / "run")
    assert len(loaded.prompts) == len(detector.prompts)


@pytest.fixture
def collapsed_refiner(monkeypatch):
    """Force the refiner to the empty map (logits -20 everywhere, still in the graph): the collapse seen on real
    data, when the refiner's Dice loss never left the empty map's value."""
    from nipad.models.onenip.network import ReconstructionNet

    refine = ReconstructionNet.refine
    monkeypatch.setattr(ReconstructionNet, "refine", lambda self, error: None if refine(self, error) is None
                        else refine(self, error) * 0.0 - 20.0)


def test_a_collapsed_refiner_is_dropped_by_the_validated_fusion_and_the_run_still_detects(
        collapsed_refiner, mvtec_maker, tmp_path):
    data = open_dataset(mvtec_maker(tmp_path / "data", n_train=20))
    mcfg = ModelConfig(**TINY, fusion="validated", prompt_matching=True, match_coreset=0.5, score_map="match")
    tcfg = TrainConfig(epochs=1, batch_size=4, lr=1e-3, synthetic_pool=1, calibration_fraction=0.3, prompts_per_class=4)
    detector = Trainer(mcfg, tcfg, tmp_path / "run", CPU, log=lambda *a: None, preset="nipad").fit(data.train, ["x"])
    info = checkpoint.read_info(tmp_path / "run")
    assert info.finished and info.extra["fusion"]["weights"]["ref"] == 0.0 and info.extra["preset"] == "nipad"
    assert info.extra["fusion"]["weights"]["match"] > 0 and info.extra["validation_auroc"] >= 0.7
    assert info.extra["fusion"]["score_weights"] == {"rec": 0.0, "ref": 0.0, "match": 1.0}
    loaded = checkpoint.load_detector(tmp_path / "run")[0]
    tokens_per_class = 14 * (mcfg.feature_size ** 2)  # 20 training images, 30% held out: 14 train each class
    assert len(loaded.bank) == len(info.classes) * tokens_per_class // 2
    assert torch.equal(loaded.bank.tokens, detector.bank.tokens.cpu())
    results, _ = run_test(loaded, data.test)
    assert results.mean["image_auroc"] >= 0.9
    assert float(detector.map_weights[1]) == 0.0


def test_a_run_whose_served_map_is_at_chance_on_validation_is_refused_and_never_marked_finished(
        collapsed_refiner, mvtec_maker, tmp_path):
    data = open_dataset(mvtec_maker(tmp_path / "data", n_train=20))
    mcfg = ModelConfig(**TINY, fusion_weight=1.0)  # the earlier cpu preset: the refiner's map alone
    tcfg = TrainConfig(epochs=1, batch_size=4, lr=1e-3, synthetic_pool=1, calibration_fraction=0.3)
    with pytest.raises(TrainingError, match="no better than chance"):
        Trainer(mcfg, tcfg, tmp_path / "run", CPU, log=lambda *a: None).fit(data.train, ["x"])
    info = checkpoint.read_info(tmp_path / "run")
    assert not info.finished and info.extra["validation_auroc"] == 0.5
    with pytest.raises(CheckpointError, match="not a finished run: its anomaly score .* no better than chance"):
        checkpoint.load_detector(tmp_path / "run")


class _Payload:
    """A pickle that would create a file when unpickled (the classic `__reduce__` attack)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_pickle_in_the_training_state_is_refused_and_never_run(tiny_mvtec, tmp_path):
    from nipad.runs import integrity
    from nipad.runs.checkpoint import STATE

    data = open_dataset(tiny_mvtec)
    run = _partial(tmp_path, data)
    marker = tmp_path / "pwned"
    # planted with its hash recorded, as an attacker with write access to the run directory could
    integrity.write_file(run, STATE, lambda tmp: torch.save({"optimizer": _Payload(marker), "history": []}, tmp))
    with pytest.raises(CheckpointError, match="train_state.pt is corrupt"):
        _train(run, data, epochs=3)
    assert not marker.exists()
