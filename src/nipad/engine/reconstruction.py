"""The "reconstruction" model family, OneNIP and UniAD: trained by nipad.engine.trainer, loaded by
nipad.runs.checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nipad.runs import checkpoint
from nipad.engine.distributed import Context
from nipad.engine.family import Family, TrainData
from nipad.runs.run_info import RECONSTRUCTION
from nipad.engine.train_config import TrainConfig
from nipad.engine.trainer import Trainer
from nipad.models.onenip.model_config import MODELS, ModelConfig


@dataclass(frozen=True)
class ReconstructionTraining:
    """Model and training settings; `preset` names the preset they came from (for the log)."""

    model: ModelConfig
    train: TrainConfig
    preset: str


def train(config: ReconstructionTraining, data: TrainData, run_dir: Path, *, ctx: Context,
          overwrite: bool = False) -> None:
    if ctx.is_main:
        print(f"nipad: training {config.model.model} ({config.preset} preset) into {run_dir}")
    Trainer(config.model, config.train, run_dir, ctx, overwrite=overwrite, preset=config.preset).fit(data.samples,
                                                                                                  data.roots)


FAMILY = Family(RECONSTRUCTION, MODELS, train, checkpoint.load_detector)
