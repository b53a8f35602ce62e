"""The Python API: nipad.train returns a run, nipad.load(run).predict takes paths, PIL images, uint8 arrays of any
size and lists of them, with the service's field names; bad inputs are nipad errors naming the problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nipad
from nipad import api
from nipad.cli.main import build_parser
from nipad.errors import ConfigError, DataError, NipadError

README = Path(__file__).resolve().parents[1] / "README.md"
README_SNIPPET = README.read_text(encoding="utf-8").split("```python\n", 1)[1].split("```", 1)[0]
"""The Python snippet of README.md, run as written by test_the_readme_snippet_runs_as_written."""


@pytest.fixture(scope="module")
def run(tiny_mvtec, tmp_path_factory) -> Path:
    """A 64x64 PatchCore run on tiny_mvtec (two classes), trained through the API."""
    root = tmp_path_factory.mktemp("api_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NIPAD_CACHE", str(root / "feature-cache"))
        out = nipad.train(data=tiny_mvtec, model="patchcore", out=root / "run", image_size=64)
    assert out == root / "run" and (out / "calibration.json").is_file()
    return out


@pytest.fixture(scope="module")
def detector(run) -> api.Detector:
    return nipad.load(run)


def _check(result: api.Result, shape: tuple[int, int]) -> None:
    assert isinstance(result, api.Result)
    assert result.anomaly_map.shape == result.pred_mask.shape == result.anomaly_map_normalized.shape == shape
    assert isinstance(result.pred_label, bool) and result.pred_mask.dtype == bool
    assert np.isfinite(result.pred_score) and 0.0 <= result.pred_score_normalized <= 1.0
    assert np.isfinite(result.anomaly_map).all()
    assert result.class_name in {"dots", "stripes"}


def test_predict_takes_paths_pil_images_arrays_and_lists(detector, tiny_mvtec):
    path = tiny_mvtec / "dots/test/blob/000.png"
    one = detector.predict(str(path))
    _check(one, (64, 64))
    assert one.path == path and one.class_name == "dots"
    row = one.to_dict()
    assert row["class"] == "dots" and row["pred_label"] is one.pred_label and row["anomaly_map"] is one.anomaly_map
    assert set(one.to_dict(maps=False)) == {"path", "class", "pred_score", "pred_label", "pred_score_normalized",
                                            "defect_area_fraction"}
    picture = Image.open(path)
    _check(detector.predict(picture.resize((90, 70))), (70, 90))
    wide = np.asarray(picture.convert("RGB").resize((300, 200)))  # 300 wide, 200 high
    _check(detector.predict(wide), (200, 300))
    grey, rgba = wide[..., 0].copy(), np.dstack([wide, np.full(wide.shape[:2], 255, np.uint8)])
    many = detector.predict([path, picture, wide, grey, rgba])
    assert isinstance(many, list) and len(many) == 5
    for result, shape in zip(many, [(64, 64), (64, 64), (200, 300), (200, 300), (200, 300)]):
        _check(result, shape)
    assert many[1].pred_score == pytest.approx(one.pred_score, rel=1e-4)  # the file and its PIL image agree
    assert many[4].pred_score == pytest.approx(many[2].pred_score, rel=1e-4)  # opaque RGBA is its RGB
    assert many[1].path is None and detector.predict([]) == []


def test_threshold_sets_the_label_and_the_half_point(detector, tiny_mvtec):
    path = tiny_mvtec / "stripes/test/good/000.png"
    score = detector.predict(path).pred_score
    low, high = detector.predict([path, path], threshold=score * 0.5), detector.predict(path, threshold=score * 2)
    assert low[0].pred_label and low[0].pred_score_normalized > 0.5
    assert not high.pred_label and high.pred_score_normalized < 0.5
    assert detector.predict(path, threshold={"stripes": score * 2, "dots": 0.0}).pred_label is False
    with pytest.raises(ConfigError, match="bottle"):
        detector.predict(path, threshold={"bottle": 1.0})
    with pytest.raises(ConfigError, match="number"):
        detector.predict(path, threshold="high")


def test_bad_inputs_are_nipad_errors_naming_the_problem(detector, tiny_mvtec, tmp_path):
    with pytest.raises(DataError, match="dtype float64.*uint8"):
        detector.predict(np.zeros((32, 32, 3)))
    with pytest.raises(DataError, match="missing.png: no such image file"):
        detector.predict(str(tmp_path / "missing.png"))
    with pytest.raises(DataError, match=r"image 1 of the list is a numpy array of shape \(3, 32, 32\).*channels first"):
        detector.predict([tiny_mvtec / "dots/test/good/000.png", np.zeros((3, 32, 32), np.uint8)])
    with pytest.raises(DataError, match="a folder, not"):
        detector.predict(tiny_mvtec)
    with pytest.raises(DataError, match="is a int|is a float"):
        detector.predict(1.5)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match="notes.png"):
        detector.predict(tmp_path / "notes.png")
    with pytest.raises(NipadError, match="not a nipad run directory"):
        nipad.load(tmp_path)


def test_train_turns_settings_into_the_command_line_and_refuses_unknown_ones(tiny_mvtec, tmp_path):
    options = api._train_options(build_parser(), "onenip")
    sd_options = api._train_options(build_parser(), "anomalysd")
    assert "--sd-lambda" not in options and "--prompt-matching" not in sd_options  # each model's own flags
    assert api._as_arguments("--overwrite", True, options["--overwrite"]) == ["--overwrite"]
    assert api._as_arguments("--overwrite", False, options["--overwrite"]) == []
    assert api._as_arguments("--prompt-matching", False, options["--prompt-matching"]) == ["--no-prompt-matching"]
    assert api._as_arguments("--sd-lambda", ["a=0.3", 0.5], sd_options["--sd-lambda"]) == ["--sd-lambda", "a=0.3",
                                                                                          "--sd-lambda", "0.5"]
    assert api._as_arguments("--classes", ["dots", "stripes"], options["--classes"]) == ["--classes", "dots,stripes"]
    assert api._as_arguments("--image-size", 64, options["--image-size"]) == ["--image-size", "64"]
    assert api._as_arguments("--image-size", None, options["--image-size"]) == []
    with pytest.raises(ConfigError, match="unknown setting imagesize=64.*image_size"):
        nipad.train(data=tiny_mvtec, out=tmp_path / "r", imagesize=64)
    with pytest.raises(ConfigError, match="unknown setting lr=1; nipad train's settings for patchcore are"):
        nipad.train(data=tiny_mvtec, model="patchcore", out=tmp_path / "r", lr=1)
    with pytest.raises(ConfigError, match=r"argument --coreset-ratio: must be in \(0, 1\], got 2"):
        nipad.train(data=tiny_mvtec, model="patchcore", out=tmp_path / "r", coreset_ratio=2)
    with pytest.raises(ConfigError, match="invalid choice: 'patchcor'"):
        nipad.train(data=tiny_mvtec, model="patchcor", out=tmp_path / "r")
    with pytest.raises(ConfigError, match="flag"):
        nipad.train(data=tiny_mvtec, out=tmp_path / "r", overwrite="yes")
    with pytest.raises(NipadError, match="nowhere"):
        nipad.train(data=tmp_path / "nowhere", out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_the_readme_snippet_runs_as_written(tiny_mvtec, tmp_path, monkeypatch, capsys):
    """README.md's Python snippet, run exactly, in a folder holding an MVTec-layout bottle class."""
    bottle = tmp_path / "mvtec/bottle"
    shutil.copytree(tiny_mvtec / "stripes", bottle)
    (bottle / "test/blob").rename(bottle / "test/broken_large")
    (bottle / "ground_truth/blob").rename(bottle / "ground_truth/broken_large")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(README_SNIPPET, "README.md", "exec"), namespace)
    assert namespace["run"] == Path("runs/bottle") and (tmp_path / "runs/bottle/calibration.json").is_file()
    assert namespace["mask"].shape == (64, 64)
    verdict = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert verdict[0] in {"True", "False"} and float(verdict[1]) == namespace["result"].pred_score


def test_import_nipad_offers_load_and_train():
    assert {"load", "train", "Detector", "Result"} <= set(dir(nipad))
    assert nipad.load is api.load and nipad.train is api.train
    with pytest.raises(AttributeError):
        nipad.no_such_thing  # noqa: B018
