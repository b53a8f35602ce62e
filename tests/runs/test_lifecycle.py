"""The run lifecycle every family shares (nipad.runs.lifecycle): a finished run is never replaced without
--overwrite, the same normal images are held out for calibration, and a finished run holds its trained images, its
thresholds and its record marked finished, written as one update."""

from __future__ import annotations

import pytest
import torch

from nipad.cli.main import main
from nipad.data import open_dataset
from nipad.engine.baselines import load_baseline
from nipad.engine.calibration import ALL, FILE as CALIBRATION, Calibration
from nipad.engine.distributed import Context
from nipad.engine.train_config import TrainConfig
from nipad.engine.trainer import Trainer
from nipad.errors import ConfigError, DataError
from nipad.models.names import SEED
from nipad.models.onenip.model_config import ModelConfig
from nipad.runs import integrity, trained_images
from nipad.runs.lifecycle import finish, held_out_source, refuse_finished, start
from nipad.runs.run_info import CONFIG, WEIGHTS, read_info
from nipad.runs.split import split_calibration

CPU = Context(0, 1, torch.device("cpu"))
TINY = dict(image_size=64, hidden_dim=32, heads=4, encoder_layers=1, decoder_layers=1, ffn_dim=64, refiner_channels=16)

pytestmark = pytest.mark.usefixtures("one_thread")


def _onenip(run_dir, data, overwrite=False):
    trainer = Trainer(ModelConfig(**TINY), TrainConfig(epochs=1, batch_size=4, synthetic_pool=1), run_dir, CPU,
                      overwrite=overwrite, log=lambda *a: None)
    return trainer.fit(data.train, [str(data.root)])


@pytest.fixture(scope="module")
def runs(tiny_mvtec, tmp_path_factory):
    """A kNN run (through `nipad train`) and a tiny OneNIP run (through the Trainer), both with the default
    calibration fraction and seed."""
    root = tmp_path_factory.mktemp("lifecycle")
    assert main(["train", "--data", str(tiny_mvtec), "--model", "knn", "--out", str(root / "knn"),
                 "--image-size", "64"]) == 0
    _onenip(root / "onenip", open_dataset(tiny_mvtec))
    return {"knn": root / "knn", "onenip": root / "onenip"}


@pytest.mark.parametrize("family", ["knn", "onenip"])
def test_a_finished_run_holds_its_trained_images_thresholds_and_record(runs, tiny_mvtec, family):
    run_dir = runs[family]
    train, held = split_calibration(open_dataset(tiny_mvtec).train, TrainConfig().calibration_fraction, SEED)
    assert TrainConfig().seed == SEED and len(held) == 2 and len(train) == 22
    assert trained_images.fingerprints(run_dir) == {trained_images.fingerprint(s.image_path) for s in train}
    calibration = Calibration.load(run_dir)
    assert calibration.classes[ALL].n_images == len(held) and calibration.source == held_out_source(held)
    info = read_info(run_dir, dict)
    assert info.finished and info.extra["n_train"] == len(train) and info.extra["n_calibration"] == len(held)
    assert set(integrity.read_manifest(run_dir)) >= {CONFIG, WEIGHTS, CALIBRATION, trained_images.FILE}


def test_both_families_refuse_to_replace_a_finished_run(runs, tiny_mvtec, capsys):
    manifests = {family: (run_dir / integrity.MANIFEST).read_bytes() for family, run_dir in runs.items()}
    assert main(["train", "--data", str(tiny_mvtec), "--model", "knn", "--out", str(runs["knn"]),
                 "--image-size", "64"]) == 2
    assert "already holds a finished run; choose another --out or pass --overwrite" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="already holds a finished run; choose another --out or pass --overwrite"):
        _onenip(runs["onenip"], open_dataset(tiny_mvtec))
    assert manifests == {family: (run_dir / integrity.MANIFEST).read_bytes() for family, run_dir in runs.items()}


def test_start_splits_the_data_and_refuses_an_empty_training_set(tiny_mvtec, tmp_path):
    samples = open_dataset(tiny_mvtec).train
    assert start(tmp_path, samples, 0.25, 3, overwrite=False) == split_calibration(samples, 0.25, 3)
    with pytest.raises(DataError, match="no training images: every class given is empty"):
        start(tmp_path, [], 0.1, 3, overwrite=False)


def test_finish_is_one_update_and_a_run_without_training_images_gets_no_thresholds(runs, tiny_mvtec, tmp_path):
    model, info = load_baseline(runs["knn"])
    samples = open_dataset(tiny_mvtec).train[:3]
    info.finished = False

    def fail(info):
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        finish(tmp_path / "failed", model, info, fail, samples, [], 0.1)
    assert not (tmp_path / "failed" / trained_images.FILE).exists() and not (tmp_path / "failed" / CALIBRATION).exists()
    saved = []
    finish(tmp_path / "run", model, info, saved.append, samples, [], 0.1)
    assert saved == [info] and info.finished and trained_images.fingerprints(tmp_path / "run") is not None
    assert "the training images themselves" in Calibration.load(tmp_path / "run").source
    finish(tmp_path / "run", model, info, saved.append, [], [], 0.1)  # a 0-shot run: nothing fitted, nothing to check
    assert trained_images.fingerprints(tmp_path / "run") is None


def test_the_guard_lets_a_new_or_unfinished_run_through_and_stops_a_finished_or_unreadable_one(tmp_path):
    refuse_finished(tmp_path, overwrite=False)  # nothing there yet
    integrity.write_json(tmp_path, CONFIG, {"finished": False})
    refuse_finished(tmp_path, overwrite=False)  # resumed
    integrity.write_json(tmp_path, CONFIG, {"finished": True})
    with pytest.raises(ConfigError, match="already holds a finished run"):
        refuse_finished(tmp_path, overwrite=False)
    (tmp_path / CONFIG).write_text("[]")
    with pytest.raises(ConfigError, match="cannot be read"):
        refuse_finished(tmp_path, overwrite=False)
    refuse_finished(tmp_path, overwrite=True)


@pytest.mark.parametrize("argv", [
    ["--model", "onenip", "--preset", "cpu"],
    ["--model", "uniad", "--preset", "cpu"],
    ["--model", "patchcore"],
    ["--model", "padim"],
    ["--model", "knn"],
    ["--model", "anomalysd", "--shots", "1", "--sd-model", "sd", "--perceptual", "lite0"],
])
def test_every_family_keeps_a_run_whose_config_it_cannot_read(tiny_mvtec, tmp_path, capsys, argv):
    out = tmp_path / "run"
    out.mkdir()
    (out / CONFIG).write_text("{not json")
    assert main(["train", "--data", str(tiny_mvtec), "--out", str(out), "--image-size", "64", *argv]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert (out / CONFIG).read_text() == "{not json" and sorted(p.name for p in out.iterdir()) == [CONFIG]
