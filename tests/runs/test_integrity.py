"""Run integrity: manifest.json hashes every run file at save time; a tampered, NaN or interrupted run is told apart
from a good one by every command that reads it."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from nipad.cli.main import main
from nipad.engine.calibration import FILE as CALIBRATION, Calibration
from nipad.engine.predict import ImageInput, predict
from nipad.errors import CheckpointError
from nipad.runs import integrity
from nipad.runs.checkpoint import load_detector, read_info, save_model
from nipad.runs.run_info import CONFIG, WEIGHTS


@pytest.fixture
def run(untrained_onenip_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(untrained_onenip_run, copy)
    return copy


@pytest.fixture
def normal_images(tiny_mvtec):
    return [str(p) for p in sorted((tiny_mvtec / "stripes/test/good").glob("*.png"))]


def _flip_bytes(path, count=2000, after=20000, seed=0):
    """XOR `count` random bytes after offset `after`, as the issue did (the file still parses as safetensors)."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(seed)
    for i in rng.choice(np.arange(after, len(data)), count, replace=False):
        data[i] ^= int(rng.integers(1, 256))
    path.write_bytes(bytes(data))


def _nan_run(run):
    """What a diverged training writes: NaN weights, saved (and hashed) by nipad itself."""
    detector, info = load_detector(run)
    with torch.no_grad():
        for param in list(detector.net.parameters())[:3]:
            param.fill_(float("nan"))
    save_model(run, detector, info)
    return run


def _last_error(capsys):
    err = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    return err[-1]


def test_every_file_of_a_run_is_recorded_with_its_hash(run):
    files = integrity.read_manifest(run)
    assert set(files) == {CONFIG, WEIGHTS, CALIBRATION}
    for name, entry in files.items():
        assert entry == {"sha256": integrity.digest(run / name), "bytes": (run / name).stat().st_size}


def test_flipped_bytes_in_the_weights_are_refused_by_every_command(run, normal_images, tmp_path, capsys):
    _flip_bytes(run / WEIGHTS)
    assert load_file(str(run / WEIGHTS))  # still a readable safetensors file: only the hash can tell
    for argv in (["predict", str(run), *normal_images, "--out", str(tmp_path / "out")],
                 ["export", str(run), "--out", str(tmp_path / "m.onnx")],
                 ["serve", str(run), "--port", "0"],
                 ["prompt", "add", str(run), "--class", "new", *normal_images]):
        assert main(argv) == 2, argv
        line = _last_error(capsys)
        assert line.startswith("nipad: error:") and str(run / WEIGHTS) in line and "corrupt" in line, line
    assert not (tmp_path / "out" / "predictions.csv").exists()


@pytest.mark.parametrize(("name", "edit"), [
    (CONFIG, lambda d: d["classes"].reverse()),
    (CALIBRATION, lambda d: d["classes"]["__all__"].update(image_threshold=0.0)),
])
def test_an_edited_config_or_calibration_is_refused(run, normal_images, tmp_path, capsys, name, edit):
    data = json.loads((run / name).read_text())
    edit(data)
    (run / name).write_text(json.dumps(data))  # valid, plausible, but not what nipad wrote
    assert main(["predict", str(run), *normal_images, "--out", str(tmp_path / "out")]) == 2
    line = _last_error(capsys)
    assert str(run / name) in line and "corrupt" in line


def test_nan_weights_are_an_error_never_a_normal_score(run, normal_images, tmp_path, capsys):
    _nan_run(run)
    for argv in (["predict", str(run), *normal_images, "--out", str(tmp_path / "out")],
                 ["serve", str(run), "--port", "0"],
                 ["prompt", "add", str(run), "--class", "new", *normal_images],
                 ["calibrate", str(run), "--data", str(tmp_path / "unused")]):
        assert main(argv) == 2, argv
        line = _last_error(capsys)
        assert "NaN or infinite" in line and str(run / WEIGHTS) in line, line
    assert json.loads((run / CALIBRATION).read_text())  # untouched


def test_nan_scores_from_any_model_are_an_error(run, normal_images):
    class NanModel:
        config = read_info(run).model

        def __call__(self, images):
            n = len(images)
            return {"pred_score": torch.full((n,), float("nan")), "anomaly_map": torch.zeros(n, 1, 64, 64)}

    inputs = [ImageInput(Path(p), Path(Path(p).name)) for p in normal_images]
    with pytest.raises(CheckpointError, match="NaN or infinite score or anomaly map for .*000.png"):
        list(predict(NanModel(), Calibration.load(run), inputs))


def test_nan_thresholds_are_never_written_nor_read(run):
    calibration = Calibration.load(run)
    broken = Calibration(calibration.rate, {**calibration.classes}, "x")
    first = next(iter(broken.classes))
    broken.classes[first] = type(broken.classes[first])(**{**broken.classes[first].__dict__,
                                                            "image_threshold": float("nan")})
    with pytest.raises(CheckpointError, match="non-finite"):
        broken.save(run)
    integrity.write_json(run, CALIBRATION, broken.to_dict())  # as if written so: still refused when read
    with pytest.raises(CheckpointError, match="non-finite"):
        Calibration.load(run)


def test_an_interrupted_save_leaves_a_run_that_loads(run, monkeypatch):
    detector, info = load_detector(run)
    before = {name: (run / name).read_bytes() for name in (CONFIG, WEIGHTS)}
    real_replace = os.replace

    def crash_on_weights(src, dst):  # interrupted while the new files are still staged (before the commit)
        if str(dst).endswith(integrity.JOURNAL):
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_weights)
    with pytest.raises(KeyboardInterrupt):
        save_model(run, detector, info)
    monkeypatch.undo()
    load_detector(run)  # the old run, as it was
    assert {name: (run / name).read_bytes() for name in (CONFIG, WEIGHTS)} == before
    assert not (run / integrity.PENDING).exists()

    moves = []

    def crash_after_weights(src, dst):  # committed, the weights moved in, then killed: no clean-up at all
        real_replace(src, dst)
        moves.append(dst)
        if str(dst).endswith(WEIGHTS):
            raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash_after_weights)
    monkeypatch.setattr(integrity.Update, "abort", lambda self: None)
    with torch.no_grad():
        detector.net.parameters().__next__().add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        save_model(run, detector, info)
    monkeypatch.undo()
    assert (run / integrity.PENDING / integrity.JOURNAL).is_file()
    reloaded, _ = load_detector(run)  # the new weights, the update completed by the reader
    assert torch.equal(next(reloaded.net.parameters()), next(detector.net.parameters()))
    assert not (run / integrity.PENDING).exists()
    assert all(integrity.verify(run, name) is None for name in (CONFIG, WEIGHTS, CALIBRATION))


def test_a_run_without_manifest_loads_with_a_warning_and_is_sealed_by_its_next_write(run):
    (run / integrity.MANIFEST).unlink()
    config = json.loads((run / CONFIG).read_text())
    del config[integrity.SEALED]  # as a run from before manifests: nothing says it had one
    (run / CONFIG).write_text(json.dumps(config))
    integrity._warned.clear()
    with pytest.warns(UserWarning, match="no manifest.json"):
        load_detector(run)
    Calibration.load(run).save(run)
    assert set(integrity.read_manifest(run)) == {CONFIG, WEIGHTS, CALIBRATION}
    _flip_bytes(run / WEIGHTS, count=10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_detector(run)


def test_a_file_copied_in_from_another_run_is_refused(run, untrained_onenip_run):
    integrity.forget(run, WEIGHTS)
    shutil.copy(untrained_onenip_run / WEIGHTS, run / WEIGHTS)
    with pytest.raises(CheckpointError, match="not listed in"):
        load_detector(run)


def test_nan_weights_written_by_hand_are_caught_by_the_hash_first(run):
    tensors = load_file(str(run / WEIGHTS))
    first = next(k for k, v in tensors.items() if v.is_floating_point())
    tensors[first] = torch.full_like(tensors[first], float("nan"))
    save_file(tensors, str(run / WEIGHTS))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_detector(run)
