"""The run directory: what `nipad train` writes and every other command reads.

    RUN_DIR/config.json        model + training settings, classes, data roots, progress (rebuilds the model)
    RUN_DIR/model.safetensors  trainable weights, prompt pool, fusion constant (the frozen backbone is not stored:
                               it is rebuilt from the installed weight package or the recorded local file)
    RUN_DIR/train_state.pt     optimiser, schedule and RNG states, for resuming an interrupted run
    RUN_DIR/manifest.json      sha256 of each of these files (nipad.engine.integrity), checked when they are read
All files are written atomically, so an interruption leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from nipad import __version__
from nipad.engine import integrity
from nipad.errors import CheckpointError, NipadError
from nipad.models.config import ModelConfig
from nipad.models.detector import Detector

CONFIG, WEIGHTS, STATE = "config.json", "model.safetensors", "train_state.pt"


@dataclass
class RunInfo:
    """Contents of config.json."""

    model: ModelConfig
    train: dict[str, Any]
    classes: list[str]
    data: list[str]
    epochs_done: int = 0
    finished: bool = False
    prompt_classes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "nipad_version": __version__, "model": self.model.to_dict(), "train": self.train,
            "classes": self.classes, "data": self.data, "epochs_done": self.epochs_done,
            "finished": self.finished, "prompt_classes": self.prompt_classes, **self.extra,
        }


def read_info(run_dir: str | Path) -> RunInfo:
    run_dir = Path(run_dir)
    path = run_dir / CONFIG
    if not run_dir.is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist; pass the --out folder of a `nipad train` run")
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: {run_dir} is not a nipad run directory (train one with `nipad train`)")
    integrity.verify(run_dir, CONFIG)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {"nipad_version"} | {f.name for f in fields(RunInfo)}
        return RunInfo(
            model=ModelConfig.from_dict(data["model"]), train=data["train"], classes=list(data["classes"]),
            data=list(data["data"]), epochs_done=int(data["epochs_done"]), finished=bool(data["finished"]),
            prompt_classes=list(data.get("prompt_classes") or []),
            extra={k: v for k, v in data.items() if k not in known},
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, NipadError) as err:
        raise CheckpointError(f"{path} is corrupt or from another program ({err}); retrain into a new folder") from err


def save_model(run_dir: Path, detector: Detector, info: RunInfo) -> None:
    """Write weights then config (the config names the prompt classes the weights hold)."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in detector.state_dict().items()
               if not k.startswith("extractor.")}
    integrity.write_file(run_dir, WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
    info.prompt_classes = list(detector.prompts.class_names)
    integrity.write_json(run_dir, CONFIG, info.to_dict())


def load_weights(run_dir: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of RUN_DIR/model.safetensors, checked against the manifest and for NaN / infinity."""
    weights = Path(run_dir) / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing: the run in {run_dir} never finished an epoch")
    integrity.verify(run_dir, WEIGHTS)
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights} is corrupt ({err}); retrain or restore it from a backup") from err
    integrity.check_finite(tensors, weights)
    return tensors


def load_detector(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[Detector, RunInfo]:
    """Rebuild the detector of a run from its config and weights, in eval mode."""
    run_dir = Path(run_dir)
    info = read_info(run_dir)
    weights = run_dir / WEIGHTS
    tensors = load_weights(run_dir)
    detector = Detector(info.model)
    if "prompts.features" in tensors:
        detector.prompts.load(info.prompt_classes, tensors["prompts.features"], tensors["prompts.owners"])
    missing, unexpected = detector.load_state_dict(tensors, strict=False)
    missing = [k for k in missing if not k.startswith("extractor.")]
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not match the model in {run_dir / CONFIG} (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); the files come from different runs"
        )
    return detector.to(device).eval(), info


def save_train_state(run_dir: Path, state: dict[str, Any]) -> None:
    integrity.write_file(run_dir, STATE, lambda tmp: torch.save(state, tmp))


def load_train_state(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / STATE
    if not path.is_file():
        return None
    integrity.verify(run_dir, STATE)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a damaged pickle
        raise CheckpointError(f"{path} is corrupt ({err}); delete it to restart training from scratch") from err
