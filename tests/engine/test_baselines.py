"""PatchCore, PaDiM and kNN end to end on tiny data through the CLI, both modes: run dir, test metrics, the Detector
call."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from nipad.cli.main import main
from nipad.data import load_image, open_dataset
from nipad.engine.calibration import Calibration
from nipad.engine.evaluate import run_test
from nipad.errors import DataError
from nipad.families import load_run

RUNS = [(m, mode) for m in ("patchcore", "padim", "knn") for mode in ("separate", "unified")]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tiny_mvtec, tmp_path_factory):
    """One 5-shot run per (method, mode): 4 training images and 1 held out per class."""
    root = tmp_path_factory.mktemp("baseline-runs")
    out = {}
    for model, mode in RUNS:
        run_dir = root / f"{model}-{mode}"
        assert main(["train", "--data", str(tiny_mvtec), "--model", model, "--mode", mode, "--out", str(run_dir),
                     "--image-size", "64", "--shots", "5"]) == 0
        out[model, mode] = run_dir
    return out


@pytest.fixture(scope="module")
def loaded(runs):
    return {key: load_run(run_dir) for key, run_dir in runs.items()}


def _images(paths):
    return torch.from_numpy(np.stack([load_image(p, 64) for p in paths]).transpose(0, 3, 1, 2).copy())


@pytest.mark.parametrize("model,mode", RUNS)
def test_run_dir_and_metrics(runs, loaded, tiny_mvtec, model, mode):
    run_dir = runs[model, mode]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["family"] == model and config["model"]["mode"] == mode and config["finished"]
    assert config["n_train"] == 8 and config["n_calibration"] == 2 and config["train"]["shots"] == 5
    assert config["groups"] == (["dots", "stripes"] if mode == "separate" else ["__all__"])
    assert set(Calibration.load(run_dir).classes) == {"dots", "stripes", "__all__"}
    detector, info = loaded[model, mode]
    assert info.classes == ["dots", "stripes"]
    results, _ = run_test(detector, open_dataset(tiny_mvtec).test)
    assert results.mean["image_auroc"] > 0.9 and results.mean["pixel_auroc"] > 0.9


@pytest.mark.parametrize("model,mode", RUNS)
def test_detector_call_names_the_class(loaded, tiny_mvtec, model, mode):
    detector, _ = loaded[model, mode]
    test = [s for s in open_dataset(tiny_mvtec).test if s.is_anomalous and s.image_path.stem in ("000", "001")]
    images = _images([s.image_path for s in test])
    out = detector(images)
    assert out["pred_score"].shape == (len(test),) and out["anomaly_map"].shape == (len(test), 1, 64, 64)
    assert out["prompt_class"] == [s.class_name for s in test]
    given = detector(images, classes=[s.class_name for s in test])
    assert torch.allclose(given["pred_score"], out["pred_score"])
    if mode == "separate":
        swapped = detector(images, classes=["dots" if s.class_name == "stripes" else "stripes" for s in test])
        assert not torch.allclose(swapped["pred_score"], out["pred_score"])
        with pytest.raises(DataError, match=r"no .* model"):
            detector(images[:1], classes=["tiles"])


def test_patchcore_bank_and_padim_gaussians(loaded):
    patchcore, _ = loaded["patchcore", "separate"]
    assert [len(patchcore.group_state(i, "bank")) for i in range(2)] == [4 * 64, 4 * 64]  # few-shot: whole bank
    assert patchcore.group_state(0, "bank").dtype == torch.float16
    padim, _ = loaded["padim", "unified"]
    assert padim.group_state(0, "inv_covariance").shape == (256, 100, 100)
    knn, _ = loaded["knn", "unified"]
    assert knn.group_state(0, "bank").shape == (8 * 4 * 4, 40 + 112)  # every patch of the stride-16 grid


def test_finished_run_kept_and_clear_errors(runs, tiny_mvtec, capsys):
    run_dir = runs["patchcore", "unified"]
    argv = ["train", "--data", str(tiny_mvtec), "--model", "patchcore", "--out", str(run_dir), "--image-size", "64"]
    assert main(argv) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert main(["train", "--data", str(tiny_mvtec), "--model", "padim", "--out", str(run_dir.parent / "x"),
                 "--image-size", "64", "--padim-dims", "999"]) == 2
    assert "exceeds" in capsys.readouterr().err
    copy = run_dir.parent / "corrupt"
    shutil.copytree(run_dir, copy)
    (copy / "model.safetensors").write_bytes(b"not a tensor file")
    assert main(["test", str(copy), "--data", str(tiny_mvtec)]) == 2
    assert "model.safetensors" in capsys.readouterr().err


def test_a_flipped_bit_in_a_baseline_run_is_refused(runs, tiny_mvtec, tmp_path, capsys):
    from nipad.runs import integrity

    run_dir = runs["padim", "unified"]
    assert set(integrity.read_manifest(run_dir)) == {"config.json", "model.safetensors", "calibration.json",
                                                     "trained_images.json"}
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-100] ^= 0x01
    (copy / "model.safetensors").write_bytes(bytes(data))
    assert main(["test", str(copy), "--data", str(tiny_mvtec)]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors is corrupt" in err and "Traceback" not in err


def test_the_training_log_names_the_unified_group_in_words(runs, tiny_mvtec):
    from nipad.engine.baselines import fit_baseline
    from nipad.models.baselines.knn import KnnConfig

    lines: list[str] = []
    samples = [s for s in open_dataset(tiny_mvtec).train][:4]
    fit_baseline(KnnConfig(image_size=64), samples, torch.device("cpu"), log=lines.append)
    assert lines[0].startswith("nipad: knn fitted: all classes (one unified model) ") and "__all__" not in lines[0]
    recorded = json.loads((runs["knn", "unified"] / "trained_images.json").read_text())
    assert recorded["count"] == 8 and len(recorded["images"][0]) == 16  # the 8 images fitted, not the 2 held out
