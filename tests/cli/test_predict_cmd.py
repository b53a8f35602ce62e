"""`nipad predict` end to end: mixed good and bad inputs, the files it writes, the summary and the exit codes."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nipad.cli.main import main
from nipad.engine.calibration import Calibration, above


@pytest.fixture
def lot(tiny_mvtec, tmp_path) -> Path:
    """lot/{left,right}/cam.png (same name, different sizes), lot/right/{broken.png truncated, label.jpg text},
    loose/*.png for a glob."""
    root = tmp_path / "lot"
    for name, size in (("left", (100, 60)), ("right", (64, 64))):
        (root / name).mkdir(parents=True)
        Image.open(tiny_mvtec / "dots/test/blob/001.png").resize(size).save(root / name / "cam.png")
    png = (root / "right/cam.png").read_bytes()
    (root / "right/broken.png").write_bytes(png[:100])
    (root / "right/label.jpg").write_text("lot 7, shift B")
    (tmp_path / "loose").mkdir()
    for i in range(2):
        Image.open(tiny_mvtec / f"stripes/test/good/00{i}.png").resize((50, 70)).save(tmp_path / f"loose/{i}.png")
    return root


def _read(out: Path) -> tuple[list[dict], list[dict]]:
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows, [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]


def test_predict_folder_and_quoted_glob_with_bad_files(tiny_uniad_run, lot, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.warns(UserWarning) as caught:
        code = main(["predict", str(tiny_uniad_run), str(lot), str(tmp_path / "loose/*.png"), "--out", str(out),
                     "--batch-size", "2", "--save-maps"])
    assert code == 0
    warned = " ".join(str(w.message) for w in caught)
    assert "broken.png" in warned and "label.jpg" in warned
    summary = capsys.readouterr().out
    rows, jsonl = _read(out)
    assert len(rows) == len(jsonl) == 4
    anomalous = sum(r["pred_label"] for r in jsonl)
    assert f"predicted 4 image(s): {anomalous} anomalous, {4 - anomalous} normal; skipped 2 unreadable" in summary
    assert "broken.png" in summary and "label.jpg" in summary
    calibration = Calibration.load(tiny_uniad_run)
    for c, j in zip(rows, jsonl):
        assert c["path"] == j["path"] and c["class"] == j["class"] and c["heatmap"] == j["heatmap"]
        assert float(c["pred_score"]) == j["pred_score"] and c["pred_label"] == str(j["pred_label"]).lower()
        threshold = calibration.for_class(j["class"]).image_threshold
        assert j["pred_label"] == bool(above(np.float64(j["pred_score"]), threshold))
        t = calibration.for_class(j["class"])
        # anomalib's min-max normalisation, the threshold at 0.5
        expected = (j["pred_score"] - t.image_threshold) / max(t.image_max - t.image_min, 1e-12) + 0.5
        assert j["pred_score_normalized"] == pytest.approx(min(max(expected, 0.0), 1.0), abs=1e-6)
    by_path = {Path(j["path"]).relative_to(tmp_path).as_posix(): j for j in jsonl}
    sizes = {"lot/left/cam.png": (100, 60), "lot/right/cam.png": (64, 64), "loose/0.png": (50, 70),
             "loose/1.png": (50, 70)}
    assert set(by_path) == set(sizes)
    assert len({j["heatmap"] for j in jsonl}) == 4
    for name, size in sizes.items():
        j = by_path[name]
        assert j["heatmap"] == f"heatmaps/{Path(name).with_suffix('.png').as_posix()}"  # mirrors the input tree
        assert Image.open(out / j["heatmap"]).size == size
        raw = np.load(out / j["anomaly_map"])
        assert raw.shape == size[::-1] and raw.dtype == np.float32
        assert j["defect_area_fraction"] == pytest.approx(
            (raw > calibration.for_class(j["class"]).pixel_threshold).mean())


def test_predict_twice_into_a_folder_inside_the_input_ignores_its_own_outputs(tiny_uniad_run, lot, capsys):
    out = lot / "results"
    for _ in range(2):
        with pytest.warns(UserWarning):
            assert main(["predict", str(tiny_uniad_run), str(lot), "--out", str(out)]) == 0
    rows, _ = _read(out)
    assert sorted(Path(r["path"]).relative_to(lot).as_posix() for r in rows) == ["left/cam.png", "right/cam.png"]
    assert "anomaly_map" in rows[0] and rows[0]["anomaly_map"] == "" and not (out / "maps").exists()


@pytest.mark.parametrize("inputs, expected", [
    (["{tmp}/nowhere"], "no input image found"),
    (["{tmp}/empty"], "no input image found"),
    (["{lot}/right/broken.png", "{lot}/right/label.jpg"], "none of the 2 input image(s) could be read"),
])
def test_no_usable_input_exits_2_with_one_clear_line(inputs, expected, tiny_uniad_run, lot, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = ["predict", str(tiny_uniad_run), *(a.format(tmp=tmp_path, lot=lot) for a in inputs), "--out",
            str(tmp_path / "out")]
    with pytest.warns(UserWarning):
        assert main(argv) == 2
    last = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]  # after the progress bar
    assert last.startswith("nipad: error:") and expected in last and "Traceback" not in last
    assert not (tmp_path / "out" / "predictions.csv").exists()


def test_predict_needs_a_run_directory(lot, tmp_path, capsys):
    assert main(["predict", str(tmp_path), str(lot / "left"), "--out", str(tmp_path / "out")]) == 2
    assert "not a nipad run directory" in capsys.readouterr().err


def test_predicting_one_image_prints_its_verdict_and_score(tiny_uniad_run, lot, tmp_path, capsys):
    image = lot / "right/cam.png"
    assert main(["predict", str(tiny_uniad_run), str(image), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    row = _read(tmp_path / "out")[1][0]
    verdict = "ANOMALOUS" if row["pred_label"] else "normal"
    assert f"{image}: {verdict} (class {row['class']}, score {row['pred_score']:.4g}" in printed


def test_threshold_given_by_hand_decides_every_label(tiny_uniad_run, tiny_mvtec, tmp_path, capsys):
    images = str(tiny_mvtec / "dots/test")
    assert main(["predict", str(tiny_uniad_run), images, "--out", str(tmp_path / "a")]) == 0
    scores = [j["pred_score"] for j in _read(tmp_path / "a")[1]]
    high, low = max(scores) + 1.0, min(scores) - 1.0
    assert main(["predict", str(tiny_uniad_run), images, "--out", str(tmp_path / "b"), "--threshold", str(high)]) == 0
    assert "image threshold set by hand" in capsys.readouterr().out
    assert not any(j["pred_label"] for j in _read(tmp_path / "b")[1])
    assert main(["predict", str(tiny_uniad_run), images, "--out", str(tmp_path / "c"), "--threshold", str(high),
                 "--threshold", f"dots={low}"]) == 0  # the class's own value wins over the global one
    rows = _read(tmp_path / "c")[1]
    assert all(j["pred_label"] and j["class"] == "dots" for j in rows)
    middle = sorted(scores)[len(scores) // 2]
    assert main(["predict", str(tiny_uniad_run), images, "--out", str(tmp_path / "d"), "--threshold",
                 f"dots={middle!r}"]) == 0
    rows = _read(tmp_path / "d")[1]
    assert [j["pred_label"] for j in rows] == [s > middle for s in scores]
    assert [j["pred_score_normalized"] for j in rows if j["pred_score"] == middle] == [0.5]


@pytest.mark.parametrize("value, expected", [("nan", "'nan' is not a finite number"),
                                             ("dots=inf", "'inf' is not a finite number"),
                                             ("bottle=0.5", "no class 'bottle' (its classes: dots, stripes)")])
def test_a_bad_threshold_is_one_clear_error(value, expected, tiny_uniad_run, tiny_mvtec, tmp_path, capsys):
    argv = ["predict", str(tiny_uniad_run), str(tiny_mvtec / "dots/test/good"), "--out", str(tmp_path / "o"),
            "--threshold", value]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "nipad: error:" in err and expected in err and "Traceback" not in err
