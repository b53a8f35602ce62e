"""Shared fixtures: a tiny MVTec-layout data set made on the fly (two classes, masks), so CI needs no real data."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _normal(kind: str, rng: np.random.Generator, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "stripes":
        base = 128 + 60 * np.sin(xx / 3.0 + phase)
    else:
        base = 128 + 60 * np.sin(xx / 5.0 + phase) * np.sin(yy / 5.0 + phase)
    img = base[..., None] + rng.normal(0, 6, (size, size, 3))
    if kind == "dots":
        img[..., 2] *= 0.6
    return np.clip(img, 0, 255).astype(np.uint8)


def make_mvtec(root: Path, n_train: int = 12, n_good: int = 3, n_bad: int = 4, size: int = 64, seed: int = 0) -> Path:
    """ROOT/<class>/{train/good, test/good, test/blob, ground_truth/blob} with square defects and their masks."""
    rng = np.random.default_rng(seed)
    for kind in ("stripes", "dots"):
        for sub in ("train/good", "test/good", "test/blob", "ground_truth/blob"):
            (root / kind / sub).mkdir(parents=True, exist_ok=True)
        for i in range(n_train):
            Image.fromarray(_normal(kind, rng, size)).save(root / kind / "train/good" / f"{i:03d}.png")
        for i in range(n_good):
            Image.fromarray(_normal(kind, rng, size)).save(root / kind / "test/good" / f"{i:03d}.png")
        for i in range(n_bad):
            img = _normal(kind, rng, size)
            mask = np.zeros((size, size), np.uint8)
            s = size // 4
            y, x = rng.integers(0, size - s, 2)
            img[y:y + s, x:x + s] = (250, 20, 20)
            mask[y:y + s, x:x + s] = 255
            Image.fromarray(img).save(root / kind / "test/blob" / f"{i:03d}.png")
            Image.fromarray(mask).save(root / kind / "ground_truth/blob" / f"{i:03d}_mask.png")
    return root


@pytest.fixture(scope="session")
def mvtec_maker():
    """`make_mvtec` for tests that need a data set of another size (tests/data has a conftest of its own)."""
    return make_mvtec


@pytest.fixture(scope="session")
def tiny_mvtec(tmp_path_factory) -> Path:
    return make_mvtec(tmp_path_factory.mktemp("tiny_mvtec"))


@pytest.fixture(scope="session")
def tiny_sd(tmp_path_factory) -> Path:
    """The tiny SD inpainting model of the AnomalySD tests (tests/models/anomalysd/anomalysd_tiny_sd.py, which
    benchmarks/anomalysd_cost.py uses too), saved once per session."""
    sys.path.insert(0, str(Path(__file__).parent / "models" / "anomalysd"))
    from anomalysd_tiny_sd import save_tiny_sd

    return save_tiny_sd(tmp_path_factory.mktemp("tiny_sd") / "sd-inpaint")


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny models: on a shared 2-core machine two threads wait on each other far
    longer than they compute."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_uniad_run(tiny_mvtec, tmp_path_factory) -> Path:
    """A UniAD run (1 epoch, 64x64, cpu preset) trained once on tiny_mvtec, calibrated; tests only read it."""
    from nipad.cli.main import main

    root = tmp_path_factory.mktemp("tiny_uniad_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NIPAD_CACHE", str(root / "feature-cache"))
        assert main(["train", "--data", str(tiny_mvtec), "--model", "uniad", "--out", str(root / "run"),
                     "--epochs", "1", "--image-size", "64", "--preset", "cpu"]) == 0
    return root / "run"


@pytest.fixture(scope="session")
def untrained_onenip_run(tiny_mvtec, tmp_path_factory) -> Path:
    """A 64x64 OneNIP run dir with UNTRAINED weights, one prompt per class and calibration.json, as `nipad train`
    writes them but in seconds: for exports and services, which need no accuracy. Tests that change it copy it."""
    import torch

    from nipad.data import load_image, open_dataset
    from nipad.engine.calibration import calibrate
    from nipad.models.onenip.detector import Detector
    from nipad.models.onenip.model_config import preset
    from nipad.runs.checkpoint import save_model
    from nipad.runs.run_info import RunInfo

    torch.manual_seed(0)
    config = preset("cpu", "onenip", image_size=64)
    detector = Detector(config).eval()
    data = open_dataset(tiny_mvtec)
    for name in data.classes:
        first = next(s for s in data.train if s.class_name == name)
        image = torch.from_numpy(load_image(first.image_path, 64)).permute(2, 0, 1)[None]
        detector.prompts.add(name, detector.features(image))
    run = tmp_path_factory.mktemp("untrained_onenip") / "run"
    run.mkdir()
    save_model(run, detector, RunInfo(config, {}, data.classes, [str(tiny_mvtec)], 0, True))
    calibrate(detector, [s for s in data.test if s.label == 0]).save(run)
    return run


@pytest.fixture(autouse=True)
def _feature_cache_in_tmp(tmp_path, monkeypatch):
    """Keep the backbone feature cache of every test inside its own temporary folder."""
    monkeypatch.setenv("NIPAD_CACHE", str(tmp_path / "feature-cache"))
