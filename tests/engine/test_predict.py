"""Prediction engine: input expansion, records at the original image size, thresholds from the calibration, outputs."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from nipad.engine.calibration import ALL, Calibration, above
from nipad.engine.image_inputs import find_images
from nipad.engine.predict import (
    ImageInput,
    Prediction,
    Skipped,
    load_original,
    predict,
    predict_images,
    save_outputs,
    write_table,
)
from nipad.errors import ConfigError
from nipad.families import load_run
from nipad.visualize import RED, overlay_heatmap


@pytest.fixture(scope="module")
def model_and_calibration(tiny_uniad_run):
    model, _ = load_run(tiny_uniad_run)
    return model, Calibration.load(tiny_uniad_run)


def test_predict_keeps_going_past_bad_files_at_original_size(images, model_and_calibration):
    model, calibration = model_and_calibration
    inputs = find_images([str(images)])
    with pytest.warns(UserWarning) as caught:
        records = list(predict(model, calibration, inputs, batch_size=2))
    skipped = {r.path.name for r in records if isinstance(r, Skipped)}
    assert skipped == {"truncated.png", "notes.jpg"}
    assert all(any(name in str(w.message) for w in caught) for name in skipped)
    preds = {r.input.relative.as_posix(): r for r in records if isinstance(r, Prediction)}
    assert set(preds) == {"a/part.png", "b/part.png", "b/deep/x.bmp"}
    sizes = {name: p.anomaly_map.shape for name, p in preds.items()}
    assert sizes == {"a/part.png": (48, 96), "b/part.png": (64, 64), "b/deep/x.bmp": (72, 40)}
    for p in preds.values():
        t = calibration.for_class(p.class_name)
        assert p.class_name in {"dots", "stripes"}
        assert p.image.shape == (*p.anomaly_map.shape, 3) and p.pred_mask.shape == p.anomaly_map.shape
        assert p.pred_label == bool(above(np.float64(p.pred_score), t.image_threshold))
        assert (p.pred_score_normalized >= 0.5) == p.pred_label
        assert (p.pred_mask == (p.anomaly_map > t.pixel_threshold)).all()
        assert p.defect_area_fraction == pytest.approx(p.pred_mask.mean())
    one_by_one = [r for r in predict(model, calibration, inputs[1:2], batch_size=1)]
    assert one_by_one[0].pred_score == pytest.approx(preds["a/part.png"].pred_score, rel=1e-4)


def test_decoded_images_predict_as_their_files(images, model_and_calibration):
    """predict_images (the in-memory path, what nipad.load(...).predict runs) gives what predict gives the files."""
    model, calibration = model_and_calibration
    inputs = find_images([str(images / "a/part.png"), str(images / "b")])
    from_files = list(predict(model, calibration, inputs, batch_size=2))
    decoded = [load_original(item.path) for item in inputs]
    in_memory = list(predict_images(model, calibration, decoded, batch_size=3))
    assert [p.input for p in in_memory] == [None] * len(inputs)
    for a, b in zip(from_files, in_memory):
        assert (a.class_name, a.pred_label, a.anomaly_map.shape) == (b.class_name, b.pred_label, b.anomaly_map.shape)
        assert a.pred_score == pytest.approx(b.pred_score, rel=1e-4)
    with pytest.raises(ConfigError, match="in memory"):
        save_outputs(in_memory[0], images / "out")


def test_labels_and_masks_follow_the_calibrated_thresholds(images, model_and_calibration):
    model, calibration = model_and_calibration
    inputs = find_images([str(images / "a/part.png"), str(images / "b")])
    first = list(predict(model, calibration, inputs))
    scores = sorted(p.pred_score for p in first)
    middle = (scores[0] + scores[1]) / 2  # between the lowest and the second lowest score
    pixel = float(np.median(first[0].anomaly_map))
    moved = {name: replace(t, image_threshold=middle, pixel_threshold=pixel) for name, t in calibration.classes.items()}
    again = list(predict(model, Calibration(calibration.rate, moved, "test"), inputs))
    assert [p.pred_label for p in again] == [p.pred_score > middle for p in first]
    assert sum(p.pred_label for p in again) == 2
    assert again[0].defect_area_fraction == pytest.approx(above(first[0].anomaly_map, pixel).mean())
    assert calibration.classes[ALL].image_threshold != middle


def test_outputs_rows_csv_jsonl_agree_and_heatmaps_show_the_mask(images, model_and_calibration, tmp_path):
    model, calibration = model_and_calibration
    inputs = find_images([str(images / "a/part.png"), str(images / "b")])
    (first,) = predict(model, calibration, inputs[:1])
    pixel = float(np.quantile(first.anomaly_map, 0.8))  # a mask over part of the first image, whatever the model
    calibration = Calibration(calibration.rate, {k: replace(t, pixel_threshold=pixel)
                                                 for k, t in calibration.classes.items()}, "test")
    preds = list(predict(model, calibration, inputs))
    assert 0 < preds[0].pred_mask.mean() < 1
    out = tmp_path / "out"
    rows = [save_outputs(p, out, save_map=True) for p in preds]
    csv_path, jsonl_path = write_table(rows, out)
    with open(csv_path, newline="") as fh:
        from_csv = list(csv.DictReader(fh))
    from_jsonl = [json.loads(line) for line in jsonl_path.read_text().splitlines()]
    assert len(rows) == len(from_csv) == len(from_jsonl) == 3
    for row, c, j in zip(rows, from_csv, from_jsonl):
        assert j == row
        assert c["path"] == row["path"] and c["class"] == row["class"] and c["heatmap"] == row["heatmap"]
        assert float(c["pred_score"]) == row["pred_score"]
        assert float(c["pred_score_normalized"]) == row["pred_score_normalized"]
        assert float(c["defect_area_fraction"]) == row["defect_area_fraction"]
        assert c["pred_label"] == ("true" if row["pred_label"] else "false")
    assert [r["heatmap"] for r in rows] == ["heatmaps/a/part.png", "heatmaps/b/part.png", "heatmaps/b/deep/x.png"]
    for p, row in zip(preds, rows):
        picture = np.asarray(Image.open(out / row["heatmap"]).convert("RGB"))
        assert picture.shape == p.image.shape
        assert (np.load(out / row["anomaly_map"]) == p.anomaly_map).all()
        painted = (picture == RED).all(axis=2)
        assert (painted == (p.pred_mask & ~ndimage.binary_erosion(p.pred_mask, border_value=0))).all()
        overlay = overlay_heatmap(p.image, p.anomaly_map_normalized)
        assert (picture[~painted] == overlay[~painted]).all()  # the rest is the plain heatmap overlay


def test_predict_rejects_a_zero_batch_size(model_and_calibration):
    from nipad.errors import ConfigError

    with pytest.raises(ConfigError, match="batch-size"):
        list(predict(*model_and_calibration, [ImageInput(Path("x.png"), Path("x.png"))], batch_size=0))
