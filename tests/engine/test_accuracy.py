"""OneNIP and UniAD actually learn: a short CPU run on a small synthetic set finds the defects (image and pixel
AUROC well above chance) and its training loss falls. Guards against an inverted score or an optimizer that never
steps, which the shape and round-trip tests would not notice."""

from __future__ import annotations

import pytest
import torch

from nipad.data import open_dataset
from nipad.engine.distributed import Context
from nipad.engine.evaluate import run_test
from nipad.engine.train_config import train_preset
from nipad.engine.trainer import Trainer
from nipad.models.onenip.model_config import preset
from nipad.runs import checkpoint


@pytest.fixture(scope="module")
def data(tmp_path_factory, mvtec_maker):
    return open_dataset(mvtec_maker(tmp_path_factory.mktemp("accuracy"), n_train=20, n_good=6, n_bad=6, seed=3))


@pytest.mark.parametrize("model", ["onenip", "uniad"])
def test_short_cpu_run_finds_the_defects_and_its_loss_falls(data, tmp_path, model):
    trainer = Trainer(preset("cpu", model, image_size=64), train_preset("cpu", epochs=12), tmp_path / "run",
                      Context(0, 1, torch.device("cpu")), log=lambda *a: None)
    detector = trainer.fit(data.train, [str(data.root)])
    history = [epoch["mse"] for epoch in checkpoint.read_info(tmp_path / "run").extra["history"]]
    assert history[-1] < 0.8 * history[0], history
    results, _ = run_test(detector.eval(), data.test, batch_size=8)
    assert results.mean["image_auroc"] > 0.85, results.mean
    assert results.mean["pixel_auroc"] > 0.85, results.mean
