"""The Python API: `nipad.train(...)` makes a run directory, `nipad.load(run).predict(images)` scores images.

    import nipad
    run = nipad.train(data="parts", model="patchcore", out="runs/parts")
    result = nipad.load(run).predict("parts/dots/test/blob/000.png")
    print(result.class_name, result.pred_score, result.pred_label)

`predict` takes image files, PIL images and uint8 numpy arrays (RGB, any size) and runs them through the same code as
`nipad predict` (nipad.engine.predict.predict_images); results carry the field names of `nipad serve` and
predictions.jsonl, with maps at each input's own size. `train` runs `nipad train` with the same options. Both raise
nipad.errors.NipadError subclasses (DataError, ConfigError, CheckpointError ...) with a message naming the problem.
This module imports torch only when a run is loaded or trained.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np
from PIL import Image

from nipad.data.image_io import MAX_PIXELS, to_rgb8
from nipad.errors import ConfigError, DataError

if TYPE_CHECKING:
    import torch

    from nipad.engine.calibration import Calibration
    from nipad.engine.predict import ImageInput, Prediction
    from nipad.models.output import AnomalyModel

ImageLike = str | os.PathLike | Image.Image | np.ndarray
"""A path to an image file, a PIL image, or a uint8 numpy array: HxWx3 RGB, HxW grey or HxWx4 RGBA."""


@dataclass(frozen=True, eq=False)  # arrays inside: compare fields, not results
class Result:
    """One image's verdict, in the names of `nipad serve` and predictions.jsonl; maps at the input image's size."""

    pred_score: float  # the raw anomaly score
    pred_label: bool  # True: anomalous (the score is above the image threshold)
    pred_score_normalized: float  # in [0, 1]; the image threshold maps to 0.5
    anomaly_map: np.ndarray  # float32 HxW, raw
    anomaly_map_normalized: np.ndarray  # float HxW in [0, 1]; the pixel threshold maps to 0.5
    pred_mask: np.ndarray  # bool HxW: anomaly_map above the pixel threshold
    class_name: str | None  # the class the model matched the image to; None where it does not tell classes apart
    path: Path | None = None  # the image file, for an input given as a path

    @property
    def defect_area_fraction(self) -> float:
        return float(self.pred_mask.mean())

    def to_dict(self, maps: bool = True) -> dict[str, Any]:
        """The fields under the keys of `nipad serve` ("class" for class_name); `maps=False` leaves out the arrays,
        so that the rest can go to json.dumps."""
        out: dict[str, Any] = {
            "path": None if self.path is None else str(self.path), "class": self.class_name,
            "pred_score": self.pred_score, "pred_label": self.pred_label,
            "pred_score_normalized": self.pred_score_normalized, "defect_area_fraction": self.defect_area_fraction,
        }
        if maps:
            out.update(anomaly_map=self.anomaly_map, anomaly_map_normalized=self.anomaly_map_normalized,
                       pred_mask=self.pred_mask)
        return out

    @classmethod
    def from_prediction(cls, pred: Prediction) -> Result:
        return cls(pred.pred_score, bool(pred.pred_label), pred.pred_score_normalized, pred.anomaly_map,
                   pred.anomaly_map_normalized, pred.pred_mask, pred.class_name,
                   None if pred.input is None else pred.input.path)


class Detector:
    """A trained run, loaded once (`nipad.load`); `predict` scores images with the run's calibrated thresholds."""

    def __init__(self, model: AnomalyModel, calibration: Calibration, classes: Sequence[str],
                 device: torch.device | str, run_dir: Path, max_pixels: int | None = MAX_PIXELS) -> None:
        self.model, self.calibration, self.device, self.run_dir = model, calibration, device, run_dir
        self.classes = list(dict.fromkeys(classes))
        self.max_pixels = max_pixels

    def __repr__(self) -> str:
        return (f"nipad.Detector({str(self.run_dir)!r}, model={self.model.model_name!r}, classes={self.classes}, "
                f"image_size={self.image_size}, device={str(self.device)!r})")

    @property
    def image_size(self) -> int:
        """The size the model sees (every input is resized to it; maps come back at the input's size)."""
        return int(self.model.config.image_size)

    @overload
    def predict(self, images: ImageLike, threshold: float | Mapping[str, float] | None = None,
                batch_size: int = 8) -> Result: ...

    @overload
    def predict(self, images: list[ImageLike] | tuple[ImageLike, ...],
                threshold: float | Mapping[str, float] | None = None, batch_size: int = 8) -> list[Result]: ...

    def predict(self, images: ImageLike | list[ImageLike] | tuple[ImageLike, ...],
                threshold: float | Mapping[str, float] | None = None, batch_size: int = 8) -> Result | list[Result]:
        """Score one image (a path, a PIL image or a uint8 array, any size), giving a Result, or a list or tuple of
        them, giving a list. `threshold` sets the image threshold of pred_label (and the 0.5 point of
        pred_score_normalized) instead of the calibrated one: a number for every class, or {class: number}."""
        from nipad.engine.predict import predict_images

        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        single = not isinstance(images, (list, tuple))
        items: list[ImageLike] = list(images) if isinstance(images, (list, tuple)) else [images]
        for index, item in enumerate(items):  # cheap checks of every input before the model runs
            _check_input(item, index if not single else None)
        calibration = self._calibration(threshold)
        results: list[Result] = []
        for start in range(0, len(items), batch_size):
            decoded = [self._decode(item, start + i if not single else None)
                       for i, item in enumerate(items[start:start + batch_size])]
            preds = predict_images(self.model, calibration, [image for image, _ in decoded], self.device,
                                   batch_size, [name for _, name in decoded])
            results += [Result.from_prediction(p) for p in preds]
        return results[0] if single else results

    def _calibration(self, threshold: float | Mapping[str, float] | None) -> Calibration:
        if threshold is None:
            return self.calibration
        if isinstance(threshold, Mapping):
            return self.calibration.with_image_thresholds(per_class=threshold, known=self.classes)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
            raise ConfigError(f"threshold={threshold!r}: give a number, or a {{class: number}} mapping")
        return self.calibration.with_image_thresholds(default=float(threshold), known=self.classes)

    def _decode(self, item: ImageLike, index: int | None) -> tuple[np.ndarray, ImageInput | None]:
        """`item` as uint8 HxWx3 RGB at its own size, and its ImageInput where it is a file."""
        from nipad.engine.predict import ImageInput, load_original

        if isinstance(item, (str, os.PathLike)):
            path = Path(item).expanduser()
            return load_original(path, self.max_pixels), ImageInput(path, Path(path.name))
        name = _name(index)
        if isinstance(item, Image.Image):
            _check_pixels(item.size[0] * item.size[1], self.max_pixels, name)
            try:
                return np.asarray(to_rgb8(item, name), dtype=np.uint8), None
            except OSError as err:  # a lazily opened file that turns out truncated
                raise DataError(f"{name}: cannot read the PIL image ({err})") from err
        _check_pixels(item.shape[0] * item.shape[1], self.max_pixels, name)
        return _array_to_rgb(item, name), None


def _check_input(item: object, index: int | None) -> None:
    """DataError naming the input when it is not a path to an existing file, a PIL image or a usable uint8 array."""
    name = _name(index)
    if isinstance(item, (str, os.PathLike)):
        path = Path(item).expanduser()
        if not path.is_file():
            where = "" if index is None else f" (item {index} of the list)"
            raise DataError(f"{os.fspath(item)}{where}: {'a folder, not' if path.is_dir() else 'no such'} image file. "
                            f"Fix: give the path of an image file (a list of paths for several images)")
    elif isinstance(item, np.ndarray):
        _array_layout(item, name)
    elif not isinstance(item, Image.Image):
        hint = " (convert it with .cpu().numpy(), as uint8 HxWxC)" if type(item).__module__.startswith("torch") else ""
        kind = type(item).__qualname__
        kind = kind if type(item).__module__ == "builtins" else f"{type(item).__module__}.{kind}"
        raise DataError(f"{name} is a {kind}{hint}; nipad predicts on a path, a PIL image or a uint8 numpy array (HxW, "
                        f"HxWx3 RGB or HxWx4 RGBA), or a list of them")


def _name(index: int | None) -> str:
    return "the image" if index is None else f"image {index} of the list"


def _array_layout(array: np.ndarray, name: str) -> str:
    """The PIL mode of `array` ("L", "RGB" or "RGBA"), or a DataError naming what is wrong with it."""
    if array.dtype != np.uint8:
        raise DataError(f"{name} is a numpy array of dtype {array.dtype}; nipad takes uint8 arrays (0-255). Fix: "
                        f"convert it, e.g. (x * 255).round().clip(0, 255).astype(np.uint8) for floats in [0, 1]")
    channels = array.shape[2] if array.ndim == 3 else None
    if array.ndim == 2 or channels == 1:
        mode = "L"
    elif channels in (3, 4):
        mode = "RGB" if channels == 3 else "RGBA"
    else:
        first = " (channels first? transpose it to HxWxC)" if array.ndim == 3 and array.shape[0] in (1, 3, 4) else ""
        raise DataError(f"{name} is a numpy array of shape {array.shape}; nipad takes HxW grey, HxWx3 RGB or "
                        f"HxWx4 RGBA{first}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{name} is an empty array (shape {array.shape})")
    return mode


def _array_to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    """uint8 HxWx3 RGB from an HxW, HxWx1, HxWx3 or HxWx4 uint8 array (alpha composited on black, as for files)."""
    mode = _array_layout(array, name)
    if mode == "RGB":
        return np.ascontiguousarray(array)
    pixels = array[..., 0] if array.ndim == 3 and mode == "L" else array
    return np.asarray(to_rgb8(Image.fromarray(np.ascontiguousarray(pixels), mode=mode), name), dtype=np.uint8)


def _check_pixels(pixels: int, max_pixels: int | None, name: str) -> None:
    if max_pixels is not None and pixels > max_pixels:
        raise DataError(f"{name} has {pixels} pixels, over the limit of {max_pixels}. Fix: shrink it, or load the run "
                        f"with a higher max_pixels")


def load(run_dir: str | os.PathLike[str], device: str | None = None, max_pixels: int | None = MAX_PIXELS) -> Detector:
    """The run in `run_dir` (made by `nipad train`) with its calibrated thresholds, on `device` (cpu, cuda, cuda:1
    ...; default CUDA when present). Images with more than `max_pixels` pixels are refused (None: no limit)."""
    from nipad.engine.calibration import Calibration
    from nipad.engine.distributed import pick_device
    from nipad.families import load_run
    from nipad.runs.integrity import consistent

    target = pick_device(device)
    path = os.fspath(run_dir)
    # model and thresholds of one version of the run, even while another process updates it
    model, info, calibration = consistent(path, lambda: (*load_run(path, target), Calibration.load(path)))
    return Detector(model, calibration, [*info.classes, *info.prompt_classes], target, Path(path), max_pixels)


def train(data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], model: str = "onenip", *,
          out: str | os.PathLike[str], **settings: Any) -> Path:
    """Train `model` on the data set(s) `data` into the run directory `out` and return it, as `nipad train --data
    DATA --model MODEL --out OUT` does. `settings` are that command's other options, underscores for dashes:
    image_size=256, shots=8, classes="bottle,cable", overwrite=True (a flag), prompt_matching=False (--no-...)."""
    from nipad.cli.main import build_parser

    roots = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    if not roots:
        raise ConfigError("train(data=...) names no data set")
    parser = build_parser()
    options = _train_options(parser, model)
    argv = ["train", *(a for root in roots for a in ("--data", os.fspath(root))), "--model", model,
            "--out", os.fspath(out)]
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if flag not in options:
            valid = ", ".join(sorted(o[2:].replace("-", "_") for o in options
                                     if o not in ("--data", "--model", "--out")))
            raise ConfigError(f"train() got an unknown setting {key}={value!r}; nipad train's settings for {model} "
                              f"are {valid}")
        argv += _as_arguments(flag, value, options[flag])
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = parser.parse_args(argv)
    except SystemExit as end:  # argparse's own refusals (bad choice, bad number) as a nipad error
        message = errors.getvalue().strip().splitlines()
        raise ConfigError(message[-1].removeprefix("nipad train: error: ") if message else
                          f"bad train settings (argparse exit {end.code})") from None
    args.run(args)
    return Path(out)


def _train_options(parser: argparse.ArgumentParser, model: str) -> dict[str, argparse.Action]:
    """`nipad train`'s options for `model` (those every model takes and its own), by flag."""
    from nipad.cli.train_cmd import add_model_flags

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    train = sub.choices["train"]
    add_model_flags(train, model)
    return {flag: action for action in train._actions for flag in action.option_strings
            if flag.startswith("--") and not flag.startswith("--no-") and flag != "--help"}


def _as_arguments(flag: str, value: Any, action: argparse.Action) -> list[str]:
    """The command-line words for `flag` = `value`: flags for True (and --no-X for False where X takes it), one
    flag per item for repeatable options, comma-joined lists otherwise; None leaves the option out."""
    if value is None:
        return []
    if isinstance(action, argparse.BooleanOptionalAction):
        return [flag if value else "--no-" + flag[2:]]
    if action.nargs == 0:  # store_true
        if not isinstance(value, bool):
            raise ConfigError(f"train() setting {flag[2:].replace('-', '_')} is a flag: give True or False, not "
                              f"{value!r}")
        return [flag] if value else []
    if isinstance(action, argparse._AppendAction) and isinstance(value, (list, tuple)):
        return [word for item in value for word in (flag, str(item))]
    if isinstance(value, (list, tuple)):
        return [flag, ",".join(str(v) for v in value)]
    return [flag, os.fspath(value) if isinstance(value, os.PathLike) else str(value)]
