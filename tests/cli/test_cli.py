"""The command line end to end on tiny data: train, test, data, and the errors a user sees for bad input."""

import json

import pytest

from nipad.cli.main import main


def test_train_then_test_writes_results_json(tiny_mvtec, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(tiny_mvtec), "--model", "uniad", "--out", str(run), "--epochs", "1",
                 "--image-size", "64", "--preset", "cpu"]) == 0
    assert main(["test", str(run), "--data", str(tiny_mvtec), "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "stripes" in out and "mean" in out and "64x64" in out
    results = json.loads((tmp_path / "m.json").read_text())
    assert set(results["per_class"]) == {"dots", "stripes"}
    assert set(results["mean"]) == {"image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap",
                                    "pixel_f1max", "pixel_aupro"}
    assert results["n_images"]["dots"] == {"normal": 3, "anomalous": 4}


def test_classes_filter_and_data_listing(tiny_mvtec, capsys):
    assert main(["data", "--data", str(tiny_mvtec), "--classes", "dots"]) == 0
    out = capsys.readouterr().out
    assert "dots" in out and "stripes" not in out


@pytest.mark.parametrize("argv, expected", [
    (["data", "--data", "/no/such/folder"], "/no/such/folder"),
    (["data", "--data", "{root}", "--classes", "nope"], "nope"),
    (["test", "{tmp}", "--data", "{root}"], "not a nipad run directory"),
    (["train", "--data", "{root}", "--out", "{tmp}/r", "--image-size", "70"], "multiple of 16"),
])
def test_bad_input_is_one_clear_line_not_a_traceback(argv, expected, tiny_mvtec, tmp_path, capsys):
    argv = [a.format(root=tiny_mvtec, tmp=tmp_path) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nipad: error:") and expected in err and "Traceback" not in err


def test_corrupt_test_image_is_skipped_and_counted(tiny_mvtec, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_mvtec, data)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--model", "uniad", "--out", str(run), "--epochs", "1",
                 "--image-size", "64", "--preset", "cpu"]) == 0
    bad = data / "dots" / "test" / "good" / "000.png"
    bad.write_bytes(bad.read_bytes()[:40])
    with pytest.warns(UserWarning, match="000.png"):
        assert main(["test", str(run), "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert "skipped 1 unreadable test image" in out and str(bad) in out
    results = json.loads((run / "metrics.json").read_text())
    assert results["n_images"]["dots"] == {"normal": 2, "anomalous": 4}
    assert results["meta"]["skipped_images"] == 1
