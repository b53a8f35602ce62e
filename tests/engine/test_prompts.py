"""The new-class flow: a class the model never saw is served after `prompt add`, with its own thresholds."""

import json
import shutil

import pytest

from nipad.cli.main import main
from nipad.data import open_dataset
from nipad.engine.calibration import Calibration
from nipad.engine.evaluate import batches
from nipad.engine.prompts import add_prompts
from nipad.errors import DataError
from nipad.runs.checkpoint import load_detector


@pytest.fixture()
def run_without_dots(tiny_mvtec, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_mvtec), "--classes", "stripes", "--model", "onenip", "--out", str(run),
                 "--epochs", "1", "--image-size", "64", "--preset", "cpu"]) == 0
    return run


def test_prompt_add_serves_a_new_class(run_without_dots, tiny_mvtec, capsys):
    data = open_dataset(tiny_mvtec)
    dots_train = [str(s.image_path) for s in data.train if s.class_name == "dots"]
    assert main(["prompt", "add", str(run_without_dots), "--class", "dots", *dots_train]) == 0
    assert "dots" in capsys.readouterr().out
    detector, info = load_detector(run_without_dots)
    assert detector.prompts.class_names == ["stripes", "dots"] and info.prompt_classes == ["stripes", "dots"]
    cal = Calibration.load(run_without_dots)
    assert cal.classes["dots"].n_images == len(dots_train) - 1 and "stripes" in cal.classes
    dots_test = [s for s in data.test if s.class_name == "dots"]
    for batch, pred in batches(detector, dots_test):
        assert pred["prompt_class"] == ["dots"] * len(batch["path"])


def test_prompt_add_with_a_bad_image_changes_nothing(run_without_dots, tmp_path):
    before = {p.name: p.read_bytes() for p in run_without_dots.iterdir() if p.is_file()}
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(DataError, match="bad.png"):
        add_prompts(run_without_dots, "dots", [bad])
    after = {p.name: p.read_bytes() for p in run_without_dots.iterdir() if p.is_file()}
    assert after == before


def test_calibrate_redoes_thresholds_from_new_normal_images(run_without_dots, mvtec_maker, tmp_path, capsys):
    old = json.loads((run_without_dots / "calibration.json").read_text())
    new_images = mvtec_maker(tmp_path / "new", seed=7)  # not the images the run trained on: calibrate refuses those
    assert main(["calibrate", str(run_without_dots), "--data", str(new_images), "--classes", "stripes",
                 "--false-alarm-rate", "0.2"]) == 0
    new = Calibration.load(run_without_dots)
    assert new.classes["stripes"].n_images == 12 != old["classes"]["stripes"]["n_images"]
    assert "20%" in capsys.readouterr().out
    shutil.rmtree(run_without_dots)
