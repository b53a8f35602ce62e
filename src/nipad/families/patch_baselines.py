"""What the PatchCore, PaDiM and kNN families share: the --mode option, the settings they take from the common flags,
and fitting and loading by nipad.engine.baselines (imported only when used)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nipad.families.flags import flag
from nipad.families.registry import CommonOptions, Family
from nipad.models.names import MODES

if TYPE_CHECKING:
    import torch

    from nipad.data.train_data import TrainData
    from nipad.engine.baselines import BaselineTraining
    from nipad.engine.distributed import Context
    from nipad.models.baselines.template import PatchBaseline
    from nipad.runs.run_info import RunInfo


@dataclass(frozen=True)
class BaselineOptions:
    """The flags every baseline takes besides the common ones; a method's options add its own."""

    mode: str | None = flag(choices=MODES, help="patchcore/padim: one model per class, the class given at test time "
                            "(separate), or one for all classes (unified, default)")

    def method_settings(self) -> dict[str, Any]:
        """The method's own config fields these options set (None: its default)."""
        return {}


def configure(model: str, options: BaselineOptions, common: CommonOptions, device: torch.device) -> BaselineTraining:
    """The method's defaults with the given flags over them; the seed is the method's."""
    from nipad.engine.baselines import METHODS, BaselineTraining
    from nipad.engine.train_config import TrainConfig

    settings = {"mode": options.mode, "backbone": common.backbone, "backbone_weights": common.backbone_weights,
                "image_size": common.image_size, "seed": common.seed, **options.method_settings()}
    model_config = METHODS[model][1](**{k: v for k, v in settings.items() if v is not None})
    train = TrainConfig(seed=model_config.seed).with_overrides(batch_size=common.batch_size, shots=common.shots,
                                                               false_alarm_rate=common.false_alarm_rate)
    return BaselineTraining(model_config, train)


def train(config: BaselineTraining, data: TrainData, run_dir: Path, *, ctx: Context, overwrite: bool = False) -> None:
    from nipad.engine.baselines import train_baseline

    train_baseline(config, data, run_dir, ctx=ctx, overwrite=overwrite)


def load(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[PatchBaseline, RunInfo]:
    from nipad.engine.baselines import load_baseline

    return load_baseline(run_dir, device)


def baseline_family(model: str, options: type[BaselineOptions]) -> Family[BaselineTraining]:
    """The family of one baseline method, named as its model."""
    return Family(model, {model: options}, configure, train, load)
