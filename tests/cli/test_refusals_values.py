"""Values that ended in a traceback, were silently changed or were refused only after the work (issue 26, faults 7-9):
each is now exit code 2 with one `nipad: error:` line naming the setting or file and the fix, before any work."""

import dataclasses
import json
import os
import socket
from pathlib import Path

import pytest
import torch

from nipad.cli.main import main
from nipad.export import MAX_OPSET, MIN_OPSET
from nipad.families import registry

from refusal import last_error


def _no_training(monkeypatch) -> None:
    """Every family's training replaced by a failure: a refusal must come before it."""
    def started(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(registry, "_FAMILIES", [dataclasses.replace(f, train=started) for f in registry.families()])


def _image(data: Path) -> str:
    return str(data / "stripes/test/good/000.png")


# -- fault 7: tracebacks from values ---------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0"])
def test_serve_max_file_mb_must_be_a_positive_number(run, capsys, value):
    assert main(["serve", str(run), "--max-file-mb", value]) == 2
    line = last_error(capsys)
    assert "--max-file-mb must be a positive number of MiB" in line and "--max-file-bytes" not in line


def test_test_batch_size_zero(run, tiny_mvtec, capsys):
    assert main(["test", str(run), "--data", str(tiny_mvtec), "--batch-size", "0"]) == 2
    assert "--batch-size must be at least 1, got 0" in last_error(capsys)


@pytest.mark.parametrize("opset", ["0", "5", "99", "-1"])
def test_export_names_the_supported_opsets(run, tmp_path, capsys, opset):
    assert main(["export", str(run), "--out", str(tmp_path / "m.onnx"), "--opset", opset]) == 2
    refusal = f"--opset {opset} is not supported: nipad exports ONNX opsets {MIN_OPSET} to {MAX_OPSET}"
    assert refusal in last_error(capsys)
    assert not (tmp_path / "m.onnx").exists()


def _device_argv(command: str, run: Path, data: Path, tmp: Path) -> list[str]:
    return {
        "predict": ["predict", str(run), _image(data), "--out", str(tmp / "p")],
        "calibrate": ["calibrate", str(run), "--data", str(data)],
        "serve": ["serve", str(run), "--threads", "1"],
        "test": ["test", str(run), "--data", str(data)],
        "train": ["train", "--data", str(data), "--model", "knn", "--out", str(tmp / "t")],
        "prompt": ["prompt", "add", str(run), "--class", "new", _image(data)],
    }[command]


@pytest.mark.parametrize("device", ["foo", "cuda"])
@pytest.mark.parametrize("command", ["predict", "calibrate", "serve", "test", "train", "prompt"])
def test_a_device_this_machine_lacks_is_named_with_those_it_has(run, tiny_mvtec, tmp_path, monkeypatch, capsys,
                                                                 command, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    _no_training(monkeypatch)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert main([*_device_argv(command, run, tiny_mvtec, tmp_path), "--device", device]) == 2
    line = last_error(capsys)
    assert f"--device {device!r} is not a device" in line if device == "foo" else "sees no CUDA GPU" in line
    assert "Fix: give one of cpu" in line
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == before


def test_a_manifest_byte_count_of_1e400_is_a_corrupt_manifest(run, tiny_mvtec, tmp_path, capsys):
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["files"]["model.safetensors"]["bytes"] = "HUGE"
    (run / "manifest.json").write_text(json.dumps(manifest).replace('"HUGE"', "1e400"))
    assert main(["predict", str(run), _image(tiny_mvtec), "--out", str(tmp_path / "p")]) == 2
    assert "manifest.json is corrupt" in last_error(capsys)


@pytest.mark.parametrize("name", ["manifest.json", "config.json"])
def test_json_nested_100k_deep_is_a_corrupt_file(run, tiny_mvtec, tmp_path, capsys, name):
    (run / name).write_text("[" * 100_000 + "]" * 100_000)
    assert main(["predict", str(run), _image(tiny_mvtec), "--out", str(tmp_path / "p")]) == 2
    line = last_error(capsys)
    assert f"{name} is corrupt" in line and "nested too deeply" in line


# -- fault 8: settings silently changed or refused late --------------------------------------------------------------

@pytest.mark.parametrize("rate", ["0", "1", "nan", "-0.5"])
def test_a_false_alarm_rate_outside_0_1_is_refused_not_replaced_by_the_runs(run, tiny_mvtec, capsys, rate):
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    expected = "--false-alarm-rate must be between 0 and 1, both excluded"
    assert main(["calibrate", str(run), "--data", str(tiny_mvtec), "--false-alarm-rate", rate]) == 2
    assert expected in last_error(capsys)
    assert main(["prompt", "add", str(run), "--class", "new", _image(tiny_mvtec), "--false-alarm-rate", rate]) == 2
    assert expected in last_error(capsys)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"} == before


@pytest.mark.parametrize("value", ["inf", "nan", "-1"])
def test_serve_max_wait_ms_must_be_a_finite_number(run, capsys, value):
    assert main(["serve", str(run), "--max-wait-ms", value]) == 2
    assert "--max-wait-ms must be a number of milliseconds, 0 or more" in last_error(capsys)


def test_serve_max_wait_ms_must_be_shorter_than_the_request_timeout(run, capsys):
    assert main(["serve", str(run), "--max-wait-ms", "5000", "--request-timeout", "2"]) == 2
    assert "is not shorter than --request-timeout" in last_error(capsys)


@pytest.mark.parametrize(("flag", "value", "expected"), [
    ("--false-alarm-rate", "0", "argument --false-alarm-rate: must be in (0, 1), got 0"),
    ("--false-alarm-rate", "1.5", "argument --false-alarm-rate: must be in (0, 1), got 1.5"),
    ("--synthetic-pool", "-1", "argument --synthetic-pool: must be at least 0, got -1"),
])
def test_train_refuses_settings_before_training(tiny_mvtec, tmp_path, monkeypatch, capsys, flag, value, expected):
    _no_training(monkeypatch)
    out = tmp_path / "r"
    with pytest.raises(SystemExit) as end:  # the parser refuses them
        main(["train", "--data", str(tiny_mvtec), "--model", "onenip", "--epochs", "1", "--out", str(out), flag, value])
    assert end.value.code == 2
    assert f"nipad train: error: {expected}" in capsys.readouterr().err
    assert not out.exists()


# -- fault 9: lesser ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["deleted", "a folder"])
def test_a_run_that_lost_its_manifest_is_refused_with_its_edited_threshold(run, tiny_mvtec, tmp_path, capsys, how):
    (run / "manifest.json").unlink()
    if how == "a folder":
        (run / "manifest.json").mkdir()
    calibration = json.loads((run / "calibration.json").read_text())
    for thresholds in calibration["classes"].values():
        thresholds["image_threshold"] = 1e9
    (run / "calibration.json").write_text(json.dumps(calibration))
    assert main(["predict", str(run), _image(tiny_mvtec), "--out", str(tmp_path / "p")]) == 2
    line = last_error(capsys)
    assert f"manifest.json {'is missing' if how == 'deleted' else 'is not a file'}" in line
    assert "records that the run was written with one" in line and "restore the run" in line


def test_serve_on_a_port_in_use_says_so_before_serving(run, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(run), "--port", str(port), "--threads", "1"]) == 2
    captured = capsys.readouterr()
    assert "serving" not in captured.out and "Traceback" not in captured.err
    assert f"nipad: error: --port {port} on 127.0.0.1 is in use by another program" in captured.err


def test_train_refuses_a_read_only_out_before_training(tiny_mvtec, tmp_path, monkeypatch, capsys):
    _no_training(monkeypatch)
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(0o555)
    if os.geteuid() == 0:  # root writes into any folder; /proc/self is one where no file can be made
        out = Path("/proc/self")
    try:
        assert main(["train", "--data", str(tiny_mvtec), "--model", "knn", "--out", str(out)]) == 2
    finally:
        (tmp_path / "read-only").chmod(0o755)
    line = last_error(capsys)
    assert f"cannot write into {out}" in line and "choose an output place you can write to" in line
