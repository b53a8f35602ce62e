"""Prediction on image files, in anomalib's names: pred_score, pred_label, anomaly_map, pred_mask.

`predict` runs any model family in batches over the inputs that nipad.engine.image_inputs.find_images names and
yields, per input, a `Prediction` (maps upsampled to the image's original size, thresholds from the run's
calibration) or a `Skipped` for a file that cannot be read; `predict_images` does the same for images already
decoded (what `predict` runs after reading the files, and what the Python API, `nipad.load(RUN).predict`, runs);
`save_outputs` and `write_table` write the heatmap PNGs and the CSV/JSONL table.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nipad.data import load_image
from nipad.data.image_io import MAX_PIXELS
from nipad.engine.calibration import Calibration
from nipad.engine.evaluate import check_finite_outputs
from nipad.engine.image_inputs import ImageInput
from nipad.errors import ConfigError, DataError
from nipad.models.output import AnomalyModel
from nipad.utils.io import atomic_write, atomic_write_text
from nipad.visualize import draw_outline, overlay_heatmap

COLUMNS = ("path", "class", "pred_score", "pred_score_normalized", "pred_label", "defect_area_fraction", "heatmap",
           "anomaly_map")
HEATMAPS, MAPS = "heatmaps", "maps"


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass
class Prediction:
    """One image's outputs; maps and mask at the image's original size (H, W)."""

    input: ImageInput | None  # None: an image given in memory (nipad.api), which has no file or output name
    class_name: str | None  # the class whose prompt was used (prompt_class); None: pooled thresholds
    pred_score: float
    pred_score_normalized: float  # anomalib-style: the calibrated image threshold maps to 0.5
    pred_label: bool
    image: np.ndarray  # uint8 HxWx3
    anomaly_map: np.ndarray  # float32 HxW, raw
    anomaly_map_normalized: np.ndarray  # float HxW in [0, 1], pixel threshold at 0.5
    pred_mask: np.ndarray  # bool HxW: anomaly_map > the calibrated pixel threshold

    @property
    def defect_area_fraction(self) -> float:
        return float(self.pred_mask.mean())


def load_original(path: Path, max_pixels: int | None = MAX_PIXELS) -> np.ndarray:
    """The image at `path` as uint8 HxWx3 RGB at its own size; DataError naming the file if it is not a readable
    image or its header declares more than `max_pixels` pixels (checked before decoding)."""
    return load_image(path, None, max_pixels)


def model_input(image: np.ndarray, size: int) -> np.ndarray:
    """`image` resized as nipad.data.load_image resizes training images (PIL bilinear), uint8 3 x size x size."""
    if image.shape[:2] != (size, size):
        image = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
    return np.ascontiguousarray(image.transpose(2, 0, 1))


def predict(model: AnomalyModel, calibration: Calibration, inputs: Sequence[ImageInput],
            device: torch.device | str = "cpu", batch_size: int = 8,
            max_pixels: int | None = MAX_PIXELS) -> Iterator[Prediction | Skipped]:
    """One Prediction or Skipped per input (bad files, and images over `max_pixels`, are warned about, not raised),
    computed `batch_size` images at a time. `model` is any loaded run (nipad.families.load_run) on `device`.
    A NaN or infinite score or map is a CheckpointError (the model is broken), never a prediction."""
    _check_batch_size(batch_size)
    if max_pixels is not None and max_pixels < 1:
        raise ConfigError(f"--max-pixels must be at least 1, got {max_pixels}")
    for start in range(0, len(inputs), batch_size):
        loaded: list[tuple[ImageInput, np.ndarray]] = []
        for item in inputs[start:start + batch_size]:
            try:
                loaded.append((item, load_original(item.path, max_pixels)))
            except DataError as err:
                warnings.warn(f"skipping {item.path}: {err}", stacklevel=2)
                yield Skipped(item.path, str(err))
        if loaded:
            yield from predict_images(model, calibration, [image for _, image in loaded], device, len(loaded),
                                      [item for item, _ in loaded])


def predict_images(model: AnomalyModel, calibration: Calibration, images: Sequence[np.ndarray],
                   device: torch.device | str = "cpu", batch_size: int = 8,
                   inputs: Sequence[ImageInput | None] | None = None) -> Iterator[Prediction]:
    """One Prediction per decoded image (uint8 HxWx3 RGB, any size, as `load_original` returns), in order,
    computed `batch_size` images at a time; `inputs[i]` names image i (None, or no `inputs`: an image given in
    memory, named "image i" in errors). NaN or infinite outputs are a CheckpointError, as in `predict`."""
    _check_batch_size(batch_size)
    names = list(inputs) if inputs is not None else [None] * len(images)
    if len(names) != len(images):
        raise ConfigError(f"{len(images)} images but {len(names)} inputs naming them")
    size = model.config.image_size
    for start in range(0, len(images), batch_size):
        batch, items = images[start:start + batch_size], names[start:start + batch_size]
        tensor = torch.from_numpy(np.stack([model_input(image, size) for image in batch])).to(device)
        with torch.inference_mode():
            out = model(tensor)
        scores = out["pred_score"].float().cpu().numpy()
        maps = out["anomaly_map"][:, 0].float().cpu()
        check_finite_outputs(scores, maps.numpy(), [item.path if item is not None else f"image {start + j}"
                                                    for j, item in enumerate(items)])
        classes = out.get("prompt_class") or [None] * len(batch)
        for j, (item, image) in enumerate(zip(items, batch)):
            yield _prediction(item, image, float(scores[j]), maps[j], classes[j], calibration)


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")


def _prediction(item: ImageInput | None, image: np.ndarray, score: float, anomaly_map: torch.Tensor,
                class_name: str | None, calibration: Calibration) -> Prediction:
    """Upsample the model-size map bilinearly to the image's size, then threshold and normalise it there."""
    full = F.interpolate(anomaly_map[None, None], size=image.shape[:2], mode="bilinear", align_corners=False)
    full_map = full[0, 0].numpy()
    applied = calibration.apply(np.array([score]), full_map[None], [class_name])
    return Prediction(
        input=item, class_name=class_name, pred_score=score,
        pred_score_normalized=float(applied["pred_score_normalized"][0]),
        pred_label=bool(applied["pred_label"][0]), image=image, anomaly_map=full_map,
        anomaly_map_normalized=applied["anomaly_map_normalized"][0], pred_mask=applied["pred_mask"][0],
    )


def save_outputs(pred: Prediction, out_dir: str | Path, save_map: bool = False, alpha: float = 0.4,
                 colormap: str = "jet") -> dict:
    """Write the heatmap PNG (normalised map over the image, pred_mask outlined in red) and, with `save_map`, the
    raw map as .npy; return the table row (output files relative to `out_dir`). `pred` must come from a file."""
    if pred.input is None:
        raise ConfigError("save_outputs needs the prediction of an image file; this one was of an image in memory")
    out_dir = Path(out_dir)
    stem = pred.input.output_stem
    heatmap = Path(HEATMAPS) / stem.with_name(f"{stem.name}.png")
    picture = draw_outline(overlay_heatmap(pred.image, pred.anomaly_map_normalized, alpha, colormap), pred.pred_mask)
    atomic_write(out_dir / heatmap, lambda tmp: Image.fromarray(picture).save(tmp, format="PNG"), fsync=False)
    raw = None
    if save_map:
        raw = Path(MAPS) / stem.with_name(f"{stem.name}.npy")
        atomic_write(out_dir / raw, lambda tmp: _save_npy(tmp, pred.anomaly_map), fsync=False)
    return {
        "path": str(pred.input.path), "class": pred.class_name, "pred_score": pred.pred_score,
        "pred_score_normalized": pred.pred_score_normalized, "pred_label": pred.pred_label,
        "defect_area_fraction": pred.defect_area_fraction, "heatmap": heatmap.as_posix(),
        "anomaly_map": raw.as_posix() if raw else None,
    }


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as fh:  # a file object: np.save would add ".npy" to the temporary name
        np.save(fh, array.astype(np.float32), allow_pickle=False)


def write_table(rows: Sequence[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """predictions.csv (booleans as true/false, None as an empty cell) and predictions.jsonl, both atomically."""
    out_dir = Path(out_dir)
    csv_path, jsonl_path = out_dir / "predictions.csv", out_dir / "predictions.jsonl"

    def write_csv(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows({k: _csv_cell(row[k]) for k in COLUMNS} for row in rows)

    atomic_write(csv_path, write_csv)
    atomic_write_text(jsonl_path, "".join(json.dumps({k: row[k] for k in COLUMNS}) + "\n" for row in rows))
    return csv_path, jsonl_path


def _csv_cell(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else value
