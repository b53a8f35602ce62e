"""What the run directory of every family holds alike: config.json, the one record of a run, and the reading of
model.safetensors.

config.json names the family and holds its model settings (which rebuild the model), the training settings, the
classes, the data roots, progress and whether the run finished; a family's own keys (a baseline's groups, AnomalySD's
prompts, the loss history) ride along in `extra`. It is written atomically, its sha256 in manifest.json
(nipad.runs.integrity), and checked when read. model.safetensors holds what the family's loader needs besides the
settings (weights, banks, shots); the frozen backbone is rebuilt, never stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from nipad import __version__
from nipad.errors import CheckpointError, NipadError
from nipad.models.names import RECONSTRUCTION
from nipad.runs import integrity
from nipad.runs.file_names import CONFIG, WEIGHTS
from nipad.utils.io import read_json


class ModelSettings(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


M = TypeVar("M", bound=ModelSettings)


@dataclass
class RunInfo(Generic[M]):
    """Contents of config.json. `model` is the family's model settings (ModelConfig, a BaselineConfig or
    AnomalySDConfig); `prompt_classes` the classes the model can tell apart by itself."""

    model: M
    train: dict[str, Any]
    classes: list[str]
    data: list[str]
    epochs_done: int = 0
    finished: bool = False
    prompt_classes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    family: str = RECONSTRUCTION

    def to_dict(self) -> dict[str, Any]:
        return {
            "nipad_version": __version__, "family": self.family, "model": self.model.to_dict(), "train": self.train,
            "classes": self.classes, "data": self.data, "epochs_done": self.epochs_done, "finished": self.finished,
            "prompt_classes": self.prompt_classes, **self.extra,
            integrity.SEALED: True,  # written with manifest.json: a run that lost it is damaged (integrity.verify)
        }


def write_info(run_dir: Path, info: RunInfo) -> None:
    integrity.write_json(run_dir, CONFIG, info.to_dict())


def _config_path(run_dir: Path) -> Path:
    """RUN_DIR/config.json, or a CheckpointError saying why run_dir is not a run."""
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist; pass the --out folder of a `nipad train` run")
    path = run_dir / CONFIG
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {run_dir} is not a nipad run directory "
                              f"(train one with `nipad train`)")
    return path


def _corrupt(path: Path, err: Exception) -> CheckpointError:
    return CheckpointError(f"{path} is corrupt or from another program ({err}); retrain into a new folder")


def read_family(run_dir: str | Path) -> str:
    """The family named in a run's config.json (what `load_run` dispatches on)."""
    path = _config_path(Path(run_dir))
    try:
        return str(read_json(path).get("family", RECONSTRUCTION))
    except (OSError, json.JSONDecodeError, AttributeError) as err:
        raise _corrupt(path, err) from err


def read_info(run_dir: str | Path, parse_model: Callable[[Mapping[str, Any]], M]) -> RunInfo[M]:
    """config.json of `run_dir`, checked against the manifest; `parse_model` is the family's model-settings reader."""
    run_dir = Path(run_dir)
    path = _config_path(run_dir)
    integrity.verify(run_dir, CONFIG)
    try:
        data = read_json(path)
        known = {"nipad_version", integrity.SEALED} | {f.name for f in fields(RunInfo)}
        return RunInfo(
            model=parse_model(data["model"]), train=dict(data["train"]), classes=list(data["classes"]),
            data=list(data["data"]), epochs_done=int(data.get("epochs_done", 0)), finished=bool(data["finished"]),
            prompt_classes=list(data.get("prompt_classes") or []),
            extra={k: v for k, v in data.items() if k not in known}, family=str(data.get("family", RECONSTRUCTION)),
        )
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, NipadError) as err:
        raise _corrupt(path, err) from err


def load_weights(run_dir: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of RUN_DIR/model.safetensors, checked against the manifest and for NaN / infinity."""
    weights = Path(run_dir) / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing: the run in {run_dir} saved no weights yet (interrupted before "
                              "its first checkpoint?)")
    integrity.verify(run_dir, WEIGHTS)
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights} is corrupt ({err}); retrain or restore it from a backup") from err
    integrity.check_finite(tensors, weights)
    return tensors
