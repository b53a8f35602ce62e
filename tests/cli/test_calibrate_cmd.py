"""`nipad calibrate --method f1`: F1-maximising image thresholds from labelled test images, recorded as such, and
refused where a class has no defect images; `--method rate` (the default) says so too."""

import json
import shutil

import numpy as np
import pytest

from nipad.cli.main import main
from nipad.data import open_dataset
from nipad.engine.calibration import ALL, Calibration
from nipad.engine.evaluate import infer
from nipad.engine.threshold_methods import f1_threshold
from nipad.runs.checkpoint import load_detector


@pytest.fixture
def run(tiny_uniad_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(tiny_uniad_run, copy)
    return copy


def test_f1_sets_each_class_image_threshold_at_its_f1_maximum(run, tiny_mvtec, capsys):
    before = Calibration.load(run)
    assert main(["calibrate", str(run), "--data", str(tiny_mvtec), "--method", "f1"]) == 0
    printed = capsys.readouterr().out
    after = Calibration.load(run)
    outputs = infer(load_detector(run)[0], open_dataset(tiny_mvtec).test)
    for name in ("dots", "stripes"):
        threshold, f1 = f1_threshold(np.array(outputs.scores[name]), np.array(outputs.labels[name]))
        t = after.classes[name]
        assert t.method == "f1" and t.image_threshold == pytest.approx(threshold)
        assert t.pixel_threshold == before.classes[name].pixel_threshold  # only the image threshold changes
        assert f"{name}: image threshold {threshold:.4g} set by F1-max (F1 {f1:.3f}" in printed
    assert after.classes[ALL] == before.classes[ALL] and "(method f1)" in printed
    stored = json.loads((run / "calibration.json").read_text())["classes"]
    assert stored["dots"]["method"] == "f1" and stored[ALL]["method"] == "rate"
    assert main(["calibrate", str(run), "--data", str(tiny_mvtec), "--skip-trained"]) == 0  # the default method
    assert "(method rate)" in capsys.readouterr().out
    assert {t.method for t in Calibration.load(run).classes.values()} == {"rate"}


def test_f1_is_refused_when_a_class_has_no_defect_images(run, tiny_mvtec, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_mvtec, data)
    shutil.rmtree(data / "stripes/test/blob")
    shutil.rmtree(data / "stripes/ground_truth")
    before = (run / "calibration.json").read_bytes()
    assert main(["calibrate", str(run), "--data", str(data), "--method", "f1"]) == 2
    err = capsys.readouterr().err
    assert "class stripes has none" in err and "--method rate" in err and "Traceback" not in err
    assert (run / "calibration.json").read_bytes() == before


def test_f1_on_a_run_without_thresholds_fits_the_rest_on_the_test_normals(run, tiny_mvtec, capsys):
    (run / "calibration.json").unlink()
    assert main(["calibrate", str(run), "--data", str(tiny_mvtec), "--method", "f1"]) == 0
    cal = Calibration.load(run)
    assert set(cal.classes) == {"dots", "stripes", ALL} and {t.method for t in cal.classes.values()} == {"f1"}
    assert cal.classes["dots"].n_images == 3  # the pixel threshold and score span: the 3 normal test images


def test_calibrate_refuses_the_images_the_run_trained_on(run, tiny_mvtec, tmp_path, capsys):
    before = (run / "calibration.json").read_bytes()
    trained = json.loads((run / "trained_images.json").read_text())["count"]
    assert 0 < trained < 24
    for data in (tiny_mvtec, tmp_path / "copy"):  # by content: a copy of the training images is refused too
        if not data.exists():
            shutil.copytree(tiny_mvtec, data)
        assert main(["calibrate", str(run), "--data", str(data)]) == 2
        err = capsys.readouterr().err
        assert f"{trained} of the 24 train-split images of {data} are images the run" in err
        assert f"(e.g. {data}/" in err and "train/good/" in err and "--skip-trained" in err and "Traceback" not in err
        assert (run / "calibration.json").read_bytes() == before
    assert main(["calibrate", str(run), "--data", str(tiny_mvtec), "--skip-trained"]) == 0
    assert f"left out {trained} image(s) the run trained on" in capsys.readouterr().out
    after = Calibration.load(run)
    assert after.classes["dots"].n_images + after.classes["stripes"].n_images == 24 - trained


def test_calibrate_names_the_pooled_thresholds_in_words(run, tiny_mvtec, capsys):
    from nipad.runs import integrity

    integrity.forget(run, "calibration.json")
    assert main(["calibrate", str(run), "--data", str(tiny_mvtec), "--skip-trained"]) == 0
    out = capsys.readouterr().out
    assert "  all classes (pooled), for classes without their own: image threshold" in out and ALL not in out
    assert ALL in Calibration.load(run).classes  # the file keeps its key: older nipad versions read it


def test_a_run_that_records_no_training_images_is_calibrated_with_a_warning(run, tiny_mvtec):
    from nipad.runs import integrity, trained_images

    integrity.forget(run, trained_images.FILE)  # as a run of an older nipad
    with pytest.warns(UserWarning, match="does not record the images it trained on"):
        assert main(["calibrate", str(run), "--data", str(tiny_mvtec)]) == 0
