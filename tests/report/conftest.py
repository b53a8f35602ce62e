"""Synthetic test outputs for the report: the tiny_mvtec test images with maps that light up the defects, one class
keeping its masks and one, under an HTML-hostile name, with image labels only."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from nipad.data import load_mask, open_dataset
from nipad.engine.evaluate import Outputs
from nipad.metrics import ClassInputs, Results, evaluate

SIZE = 64
ODD_NAME = '<b>dots & "co"</b>'


@pytest.fixture(scope="session")
def synthetic(tiny_mvtec) -> tuple[Results, Outputs]:
    """(Results, Outputs) as run_test gives them; class ODD_NAME (the dots images) has no masks, and one skipped
    file has a name and reason that need escaping."""
    rng = np.random.default_rng(0)
    outputs = Outputs()
    for sample in open_dataset(tiny_mvtec).test:
        name = "stripes" if sample.class_name == "stripes" else ODD_NAME
        mask = load_mask(sample.mask_path, SIZE) if sample.mask_path else np.zeros((SIZE, SIZE), bool)
        noise = ndimage.gaussian_filter(rng.random((SIZE, SIZE)), 3).astype(np.float32)
        anomaly_map = noise + ndimage.gaussian_filter(mask.astype(np.float32), 2)
        outputs.scores[name].append(float(anomaly_map.max()))
        outputs.labels[name].append(sample.label)
        outputs.maps[name].append(anomaly_map)
        outputs.masks[name].append(mask if name == "stripes" else np.zeros_like(mask))
        outputs.paths[name].append(str(sample.image_path))
    outputs.skipped.append(("/data/<img src=x>.png", 'cannot decode & "broken"'))
    inputs = {
        name: ClassInputs(np.asarray(outputs.scores[name]), np.asarray(outputs.labels[name]),
                          np.stack(outputs.maps[name]) if name == "stripes" else None,
                          np.stack(outputs.masks[name]) if name == "stripes" else None)
        for name in outputs.scores
    }
    return evaluate(inputs, image_size=(SIZE, SIZE), meta={"run_dir": "runs/<demo>"}), outputs
