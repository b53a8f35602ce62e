"""Resuming an interrupted AnomalySD fine-tuning: rerunning the same `nipad train` command continues it.

RUN_DIR/train_state.pt holds, in one file written atomically (so weights, optimizer and progress always agree): the
stage under way and its epochs done, Adam's state, the weights tuned so far (as model.safetensors names them), the
loss history and a digest of the shots. It is written after an epoch once `every_s` seconds have passed since the
last write (a real SD UNet with Adam's moments is ~10 GB, an epoch of a few shots seconds) and after each stage's last
epoch, and deleted once the run is finished. config.json says "finished": false meanwhile. Its hash is kept in the
run's manifest.json and checked before it is read (nipad.runs.integrity).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nipad.errors import CheckpointError, ConfigError
from nipad.models.anomalysd.finetune import STAGES, StageStart
from nipad.runs import integrity
from nipad.runs.file_names import TRAIN_STATE as STATE


def shots_digest(shots: Tensor, owners: Tensor) -> str:
    """sha256 of the shot images and their classes: a resumed run must tune on the very same shots."""
    h = hashlib.sha256(shots.contiguous().numpy().tobytes())
    h.update(owners.contiguous().numpy().tobytes())
    return h.hexdigest()


@dataclass
class Progress:
    """A saved point of the fine-tuning: `stage` under way (or just ended) with `epoch` of its epochs done."""

    stage: str
    epoch: int
    optimizer: dict[str, Any]
    weights: dict[str, Tensor]
    history: list[dict] = field(default_factory=list)

    def start(self, stage: str, epochs: int) -> StageStart:
        """Where `stage` (of `epochs` epochs) resumes: done if it came before the saved one, from the start if after."""
        if STAGES.index(stage) < STAGES.index(self.stage):
            return StageStart(epochs)
        if stage == self.stage:
            return StageStart(self.epoch, self.optimizer)
        return StageStart()


def load_progress(run_dir: Path, digest: str) -> Progress | None:
    """The saved progress in run_dir (None when there is none); errors for a damaged file or other shots."""
    path = run_dir / STATE
    if not path.is_file():
        return None
    integrity.verify(run_dir, STATE)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        progress = Progress(state["stage"], int(state["epoch"]), state["optimizer"], state["weights"],
                            list(state["history"]))
        saved_digest = state["shots"]
    except Exception as err:  # torch raises many types for a damaged file
        raise CheckpointError(f"{path} is corrupt ({err}); delete it to restart the fine-tuning from scratch") from err
    if saved_digest != digest:
        raise ConfigError(f"{run_dir} holds an unfinished run fine-tuned on other shots; choose another --out or pass "
                          "--overwrite")
    return progress


class Saver:
    """The `checkpoint` of finetune_unet / finetune_decoder: writes train_state.pt when due (see the module doc).
    `weights(stage)` gives the tensors tuned so far; `history` is the run's loss history, appended to by the stages."""

    def __init__(self, run_dir: Path, digest: str, weights: Callable[[str], dict[str, Tensor]], history: list[dict],
                 every_s: float) -> None:
        self.path, self.digest, self.weights, self.history = run_dir / STATE, digest, weights, history
        self.every_s, self.last = every_s, time.monotonic()

    def __call__(self, stage: str, epoch: int, optimizer: torch.optim.Optimizer, last_epoch: bool) -> None:
        if not last_epoch and time.monotonic() - self.last < self.every_s:
            return
        state = {"stage": stage, "epoch": epoch, "optimizer": optimizer.state_dict(), "history": self.history,
                 "weights": {k: v.detach().cpu().contiguous() for k, v in self.weights(stage).items()},
                 "shots": self.digest}
        integrity.write_file(self.path.parent, STATE, lambda tmp: torch.save(state, tmp))
        self.last = time.monotonic()

    def remove(self) -> None:
        integrity.forget(self.path.parent, STATE)
