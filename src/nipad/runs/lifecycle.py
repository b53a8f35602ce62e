"""The steps every family's training shares, written once: `start` (refuse a finished run, hold out the calibration
images; `refuse_finished` alone for a family that holds out none) before the family fits, and `finish` (record the
images it fitted on, set the thresholds, save the run marked finished) after. A family only fits its model and saves
its own files."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from nipad.data.sample import Sample
from nipad.engine.calibration import calibrate
from nipad.errors import ConfigError, DataError
from nipad.models.output import AnomalyModel
from nipad.runs import integrity, trained_images
from nipad.runs.run_info import CONFIG, RunInfo
from nipad.runs.split import split_calibration
from nipad.utils.io import read_json


def refuse_finished(run_dir: str | Path, overwrite: bool) -> None:
    """The overwrite guard of every family: without `overwrite`, a finished run in `run_dir` is never replaced, nor
    one whose config.json cannot be read (it may be a finished run). An unfinished run passes: it is resumed."""
    path = Path(run_dir) / CONFIG
    if overwrite or not path.is_file():
        return
    try:
        finished = bool(read_json(path).get("finished"))
    except (OSError, json.JSONDecodeError, AttributeError) as err:
        raise ConfigError(f"{path} cannot be read ({err}), so {run_dir} may hold a finished run; choose another --out "
                          "or pass --overwrite") from err
    if finished:
        raise ConfigError(f"{run_dir} already holds a finished run; choose another --out or pass --overwrite")


def start(run_dir: Path, samples: Sequence[Sample], fraction: float, seed: int, overwrite: bool
          ) -> tuple[list[Sample], list[Sample]]:
    """(training images, held-out calibration images) of a new or resumed run in `run_dir`: a finished run there is
    refused without `overwrite`, and so is a training set left empty."""
    refuse_finished(run_dir, overwrite)
    train, held = split_calibration(samples, fraction, seed)
    if not train:
        raise DataError("no training images: every class given is empty")
    return train, held


def held_out_source(held: Sequence[Sample]) -> str:
    """calibration.json's "source" of thresholds set on `held` (on the training images when none are held out)."""
    return (f"{len(held)} held-out normal training images" if held else
            "the training images themselves (none held out: thresholds may be too low)")


def finish(run_dir: Path, model: AnomalyModel, info: RunInfo, save: Callable[[RunInfo], None],
           train: Sequence[Sample], held: Sequence[Sample], rate: float, source: str | None = None) -> None:
    """As one update of the run (all files or none): record `train` in trained_images.json (what `nipad calibrate`
    must not set thresholds on), set thresholds at the false alarm `rate` on the normal images `held` (on `train`
    when none are held out; `source` says so in calibration.json, by default `held_out_source`), then `save` the
    family's files with `info` marked finished. A run that fitted on no image (0-shot) records none and gets no
    thresholds: the user sets them with `nipad calibrate`."""
    with integrity.update(run_dir, create=True):
        if train:
            trained_images.record(run_dir, train)
            calibrate(model, list(held or train), rate, source or held_out_source(held)).save(run_dir)
        else:
            integrity.forget(run_dir, trained_images.FILE)  # another run's, left by --overwrite
        info.finished = True
        save(info)
