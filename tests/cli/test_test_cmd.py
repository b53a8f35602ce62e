"""`nipad test` reports each class's operating threshold and what it does: in the printout, the JSON and report.html."""

import json
import re
import warnings

import pytest

from nipad.cli.main import main
from nipad.engine.calibration import Calibration

KEYS = {"image_threshold", "threshold_method", "threshold_from", "defects_caught", "defects_missed", "false_alarms",
        "correct_passes", "precision", "recall"}


def test_json_and_report_show_the_threshold_and_the_counts_at_it(tiny_uniad_run, tiny_mvtec, tmp_path, capsys):
    out = tmp_path / "r" / "m.json"
    assert main(["test", str(tiny_uniad_run), "--data", str(tiny_mvtec), "--json", str(out)]) == 0
    assert "correct passes" in capsys.readouterr().out
    data = json.loads(out.read_text())
    calibration = Calibration.load(tiny_uniad_run)
    assert set(data["operating_point"]) == {"dots", "stripes"}
    for name, point in data["operating_point"].items():
        assert set(point) == KEYS and point["threshold_method"] == "rate" and point["threshold_from"] == "class"
        assert point["image_threshold"] == calibration.classes[name].image_threshold
        n = data["n_images"][name]
        assert point["defects_caught"] + point["defects_missed"] == n["anomalous"]
        assert point["false_alarms"] + point["correct_passes"] == n["normal"]
        if point["precision"] is not None:
            assert point["precision"] == pytest.approx(
                point["defects_caught"] / (point["defects_caught"] + point["false_alarms"]))
        assert point["recall"] == pytest.approx(point["defects_caught"] / n["anomalous"])
    page = (out.parent / "report.html").read_text(encoding="utf-8")
    assert re.findall(r'<tr data-threshold-class="([^"]+)"', page) == ["dots", "stripes"]
    caught = data["operating_point"]["dots"]["defects_caught"]
    assert f"{caught} defects caught" in page


def test_threshold_by_hand_changes_the_counts(tiny_uniad_run, tiny_mvtec, tmp_path):
    out = tmp_path / "m.json"
    assert main(["test", str(tiny_uniad_run), "--data", str(tiny_mvtec), "--json", str(out), "--threshold=-1e9",
                 "--threshold", "stripes=1e9"]) == 0
    points = json.loads(out.read_text())["operating_point"]
    assert points["dots"]["defects_missed"] == 0 and points["dots"]["correct_passes"] == 0
    assert points["stripes"]["defects_caught"] == 0 and points["stripes"]["false_alarms"] == 0
    assert points["dots"]["threshold_method"] == "manual" and points["stripes"]["image_threshold"] == 1e9


def test_a_class_the_run_never_saw_is_warned_about_and_keeps_the_runs_metrics(tiny_uniad_run, tiny_mvtec, tmp_path,
                                                                               capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_uniad_run, run)
    (run / "metrics.json").write_text('{"own": "results"}')
    data = tmp_path / "data"
    shutil.copytree(tiny_mvtec / "stripes", data / "gears")
    shutil.copytree(tiny_mvtec / "dots", data / "dots")
    with pytest.warns(UserWarning, match=r"not trained on gears; its scores for it are not comparable"):
        assert main(["test", str(run), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "results not written" in out and "--overwrite-metrics" in out
    assert (run / "metrics.json").read_text() == '{"own": "results"}' and not (run / "report.html").exists()
    other = tmp_path / "elsewhere" / "m.json"
    with pytest.warns(UserWarning, match="gears"):
        assert main(["test", str(run), "--data", str(data), "--json", str(other)]) == 0
    assert json.loads(other.read_text())["meta"]["unseen_classes"] == ["gears"]
    assert 'id="unseen"' in (other.parent / "report.html").read_text(encoding="utf-8")
    with pytest.warns(UserWarning, match="gears"):
        assert main(["test", str(run), "--data", str(data), "--overwrite-metrics"]) == 0
    assert set(json.loads((run / "metrics.json").read_text())["per_class"]) == {"dots", "gears"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own classes: no warning, written as before
        assert main(["test", str(run), "--data", str(tiny_mvtec)]) == 0
    assert "unseen_classes" not in json.loads((run / "metrics.json").read_text())["meta"]
