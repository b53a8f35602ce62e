"""Prediction on image files, in anomalib's names: pred_score, pred_label, anomaly_map, pred_mask.

`find_images` expands the user's paths (image files, folders searched recursively, glob patterns) into inputs with
unique output names that mirror the input tree; `predict` runs any model family in batches and yields, per input, a
`Prediction` (maps upsampled to the image's original size, thresholds from the run's calibration) or a `Skipped`
for a file that cannot be read; `predict_images` does the same for images already decoded (what `predict` runs
after reading the files, and what the Python API, `nipad.load(RUN).predict`, runs); `save_outputs` and
`write_table` write the heatmap PNGs and the CSV/JSONL table.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from nipad.data import IMAGE_EXTENSIONS, load_image
from nipad.data.image_io import MAX_PIXELS, file_kind
from nipad.engine.calibration import Calibration
from nipad.engine.evaluate import check_finite_outputs
from nipad.errors import ConfigError, DataError
from nipad.models.output import AnomalyModel
from nipad.utils.io import atomic_write, atomic_write_text
from nipad.visualize import draw_outline, overlay_heatmap

COLUMNS = ("path", "class", "pred_score", "pred_score_normalized", "pred_label", "defect_area_fraction", "heatmap",
           "anomaly_map")
HEATMAPS, MAPS = "heatmaps", "maps"


@dataclass(frozen=True)
class ImageInput:
    """An image file to predict on and its path relative to the common root of the inputs (for output names).
    `keep_suffix`: another input in the same folder has the same stem, so its outputs keep the image's suffix."""

    path: Path
    relative: Path
    keep_suffix: bool = False

    @property
    def output_stem(self) -> Path:
        """Where its outputs go below DIR/heatmaps and DIR/maps, without their own suffix: `lot/part` for
        lot/part.png, or `lot/part.png` when lot/part.jpg is an input too."""
        return self.relative if self.keep_suffix else self.relative.with_suffix("")


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


def find_images(paths: Sequence[str], exclude: str | Path | None = None) -> list[ImageInput]:
    """Image files named by `paths` (files as given; folders recursively and glob matches, both filtered by
    IMAGE_EXTENSIONS and without hidden entries), each once, in argument order; files under `exclude` (the output
    folder) are left out of folder and glob expansion. A path that matches nothing is warned about, and so is one
    that is not a regular file (a FIFO named b.png would block its reader forever), which is left out."""
    found: list[tuple[Path, Path]] = []
    skip = Path(exclude).resolve() if exclude is not None else None
    for text in paths:
        path = Path(text).expanduser()
        if path.is_file():
            found.append((path, path.parent))
            continue
        if path.exists() and not path.is_dir():
            _warn_not_regular(path)
            continue
        if path.is_dir():
            files, root = _images_under(path), path
        elif glob.has_magic(text):
            files, root = _glob_images(str(path)), _literal_prefix(path)
        else:
            warnings.warn(f"{text}: no such file or folder, and no glob pattern", stacklevel=2)
            continue
        files = [f for f in files if skip is None or not f.resolve().is_relative_to(skip)]
        if not files:
            warnings.warn(f"{text}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) found", stacklevel=2)
        found += [(f, root) for f in files]
    return _unique_inputs(found)


def _images_under(folder: Path) -> list[Path]:
    out = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(here) / f for f in sorted(files) if _is_image_name(f) and _regular_or_warn(Path(here) / f)]
    return out


def _regular_or_warn(path: Path) -> bool:
    """False, with a warning, for a path that exists and is not a regular file (a broken link passes: reading it
    fails with its own message)."""
    try:
        kind = file_kind(path.stat().st_mode)
    except OSError:
        return True
    if kind is not None:
        _warn_not_regular(path, kind)
    return kind is None


def _warn_not_regular(path: Path, kind: str | None = None) -> None:
    if kind is None:
        try:
            kind = file_kind(path.stat().st_mode) or "a regular file"
        except OSError:
            kind = "unreadable"
    warnings.warn(f"skipping {path}: it is {kind}, not a regular file", stacklevel=3)


def _glob_images(pattern: str) -> list[Path]:
    out = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        p = Path(match)
        if p.is_dir():
            out += _images_under(p)
        elif p.is_file() and _is_image_name(p.name):
            out.append(p)
        elif p.exists() and _is_image_name(p.name):
            _warn_not_regular(p)
    return out


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _literal_prefix(pattern: Path) -> Path:
    """The folder part of a glob pattern before its first wildcard: the root its matches are named relative to."""
    parts = pattern.parts
    literal = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return Path(*parts[:literal]) if literal else Path(".")


def _unique_inputs(found: list[tuple[Path, Path]]) -> list[ImageInput]:
    """Drop repeats of one file and name the rest relative to the common folder of their roots, so that outputs
    mirror the input tree and two inputs with the same file name never share an output."""
    seen: set[Path] = set()
    files: list[tuple[Path, Path]] = []
    for path, root in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            files.append((path, root))
    if not files:
        return []
    base = os.path.commonpath([os.path.abspath(root) for _, root in files])
    relative = [Path(os.path.relpath(os.path.abspath(path), base)) for path, _ in files]
    stems = Counter(r.with_suffix("") for r in relative)
    return [ImageInput(path, rel, stems[rel.with_suffix("")] > 1) for (path, _), rel in zip(files, relative)]


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
