"""A new product type without retraining: add normal images of a class to a run's prompt pool and calibrate it."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import torch

from nipad.data.image_io import load_image
from nipad.data.sample import NORMAL, Sample
from nipad.engine.calibration import Calibration, calibrate
from nipad.engine.train_config import check_rate
from nipad.errors import ConfigError, DataError
from nipad.models.prompt_pool import central
from nipad.runs import checkpoint, integrity

CLASS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def check_class_name(name: str) -> str:
    """`name` if it is a valid class name (the same rule for the CLI and HTTP), else ConfigError."""
    if not CLASS_NAME.fullmatch(name):
        raise ConfigError(f"invalid class name {name!r}: use 1-64 letters, digits, '_', '-' or '.', starting with a "
                          f"letter or digit")
    return name


def add_prompts(run_dir: str | Path, class_name: str, paths: Sequence[str | Path], n_prompts: int = 1,
                rate: float | None = None, device: str = "cpu", max_pixels: int | None = None) -> dict:
    """Add the `n_prompts` most typical of `paths` as prompts of `class_name` and set that class's thresholds from
    the other images (from all of them when there are too few: said in the calibration source). The images are read
    first; then, under the run's writer lock, the run is read as it is on disk now (so what other processes added is
    kept) and its weights, config and calibration are replaced as one update (nipad.runs.integrity.update): a
    failure, or a kill at any point, leaves the run as it was or with the class fully added."""
    run_dir = Path(run_dir)
    check_class_name(class_name)
    if n_prompts < 1:
        raise ConfigError(f"--prompts must be at least 1, got {n_prompts}")
    check_rate(rate)  # 0 is refused, not read as "the run's rate"
    files = [Path(p) for p in paths]
    if not files:
        raise DataError("no images given: pass normal images of the new class")
    size = integrity.consistent(run_dir, lambda: checkpoint.read_info(run_dir)).model.image_size
    images = _read_images(files, size, max_pixels)  # a bad image is refused before the run is touched
    with integrity.update(run_dir):
        detector, info = checkpoint.load_detector(run_dir, device)
        calibration = Calibration.load(run_dir)
        if detector.config.image_size != size:  # the run was replaced meanwhile
            images = _read_images(files, detector.config.image_size, max_pixels)
        images = images.to(device)
        with torch.no_grad():
            features = torch.cat([detector.features(images[i:i + 16]) for i in range(0, len(images), 16)])
        chosen = central(features, max(1, min(n_prompts, len(files))))
        detector.prompts.add(class_name, features[chosen])
        rest = [p for i, p in enumerate(files) if i not in chosen]
        held = rest if len(rest) >= 2 else files
        source = (f"{len(held)} normal images given to `nipad prompt add` (not the prompts)" if held is rest else
                  f"the {len(held)} prompt image(s) themselves: give more images for trustworthy thresholds")
        samples = [Sample(p, class_name, NORMAL) for p in held]
        new = calibrate(detector, samples, calibration.rate if rate is None else rate, source)
        checkpoint.save_model(run_dir, detector, info)
        calibration.merged(new).save(run_dir)
    note = new.too_few_note([class_name])
    return {"class": class_name, "prompts": len(chosen), "calibration_images": len(held),
            "image_threshold": new.classes[class_name].image_threshold, "source": source,
            **({"warning": note} if note else {})}


def _read_images(paths: Sequence[Path], size: int, max_pixels: int | None) -> torch.Tensor:
    return torch.stack([torch.from_numpy(load_image(p, size, max_pixels)).permute(2, 0, 1) for p in paths])
