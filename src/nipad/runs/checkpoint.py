"""A OneNIP / UniAD run's files beside config.json (nipad.runs.run_info): the detector and its training state.

    RUN_DIR/model.safetensors  trainable weights, prompt pool, fusion constant (the frozen backbone is not stored:
                               it is rebuilt from the installed weight package or the recorded local file)
    RUN_DIR/train_state.pt     optimiser and schedule states and the loss history, for resuming an interrupted run
Each file's sha256 is in manifest.json (nipad.runs.integrity) and checked when it is read. Weights and config are
written as one update (nipad.runs.integrity.update), so an interruption leaves the previous checkpoint intact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from nipad.errors import CheckpointError
from nipad.models.onenip.detector import Detector
from nipad.models.onenip.model_config import ModelConfig
from nipad.runs import integrity, run_info
from nipad.runs.file_names import TRAIN_STATE as STATE
from nipad.runs.run_info import CONFIG, WEIGHTS, RunInfo


def read_info(run_dir: str | Path) -> RunInfo[ModelConfig]:
    """config.json of a OneNIP / UniAD run."""
    return run_info.read_info(run_dir, ModelConfig.from_dict)


def save_model(run_dir: Path, detector: Detector, info: RunInfo) -> None:
    """Write weights and config (which names the prompt classes the weights hold) as one update: both or neither."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in detector.state_dict().items()
               if not k.startswith("extractor.")}
    with integrity.update(run_dir, create=True):
        integrity.write_file(run_dir, WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
        info.prompt_classes = list(detector.prompts.class_names)
        run_info.write_info(run_dir, info)


def load_detector(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[Detector, RunInfo]:
    """Rebuild the detector of a finished run from its config and weights, in eval mode."""
    run_dir = Path(run_dir)
    info = read_info(run_dir)
    if not info.finished:
        raise CheckpointError(f"{run_dir} is not a finished run: "
                              + info.extra.get("refused", f"training stopped after {info.epochs_done} epochs; rerun "
                                               f"the same `nipad train` command to resume it"))
    weights = run_dir / WEIGHTS
    tensors = run_info.load_weights(run_dir)
    detector = Detector(info.model)
    if "prompts.features" in tensors:
        detector.prompts.load(info.prompt_classes, tensors["prompts.features"], tensors["prompts.owners"])
    if detector.bank is not None and "bank.tokens" in tensors:
        detector.bank.load(tensors["bank.tokens"], tensors["bank.owners"])
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
    """The optimiser state and loss history saved for resuming, read with `weights_only=True`: tensors, numbers,
    strings and containers only, so a planted pickle cannot run code (it is refused as corrupt)."""
    path = run_dir / STATE
    if not path.is_file():
        return None
    integrity.verify(run_dir, STATE)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for a damaged pickle
        raise CheckpointError(f"{path} is corrupt ({err}); delete it to restart training from scratch") from err
