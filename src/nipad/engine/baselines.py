"""PatchCore, PaDiM and kNN as model families (one each): fitted in one pass over the normal images, no training loop.

Their run directory: config.json (nipad.runs.run_info; the fitted groups in its "groups"), model.safetensors (the
fitted banks / Gaussians and class-mean descriptors; the frozen backbone is rebuilt from its weights) and
calibration.json (thresholds from held-out normal training images, as the reconstruction trainer does), each file's
hash in manifest.json (nipad.runs.integrity). Written atomically, config last, so a run without `"finished": true`
never loads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import Tensor
from torch.utils.data import DataLoader

from nipad.data.sample import Sample
from nipad.data.torch_dataset import ImageDataset, collate_skip_bad
from nipad.data.train_data import TrainData
from nipad.engine.distributed import Context
from nipad.engine.train_config import TrainConfig
from nipad.errors import CheckpointError, ConfigError
from nipad.models.baselines.knn import Knn, KnnConfig
from nipad.models.baselines.padim import Padim, PadimConfig
from nipad.models.baselines.patchcore import PatchCore, PatchCoreConfig
from nipad.models.baselines.template import BaselineConfig, PatchBaseline
from nipad.runs import integrity, lifecycle
from nipad.runs.file_names import ALL
from nipad.runs.run_info import CONFIG, WEIGHTS, RunInfo, load_weights, read_info, write_info
from nipad.utils.progress import progress

METHODS: dict[str, tuple[type[PatchBaseline], type[BaselineConfig]]] = {
    "patchcore": (PatchCore, PatchCoreConfig),
    "padim": (Padim, PadimConfig),
    "knn": (Knn, KnnConfig),
}


@dataclass(frozen=True)
class BaselineTraining:
    """The method's settings and what it takes from the training settings: batch size, shots, false alarm rate,
    calibration fraction (their seed is the method's)."""

    model: BaselineConfig
    train: TrainConfig = TrainConfig()


def image_batches(samples: Sequence[Sample], image_size: int, batch_size: int, device: torch.device,
                  progress: Callable[[int], None]) -> Iterator[tuple[Tensor, list[str]]]:
    """(uint8 images on `device`, class names) of the readable `samples` (unreadable ones warn and are left out)."""
    loader = DataLoader(ImageDataset(samples, image_size, skip_bad=True), batch_size=batch_size,
                        collate_fn=collate_skip_bad)
    for batch in loader:
        progress(len(batch["class_name"]) + len(batch["skipped"]))
        yield batch["image"].to(device), batch["class_name"]


def fit_baseline(config: BaselineConfig, train: Sequence[Sample], device: torch.device, batch_size: int = 8,
                 log: Callable[[str], None] = print) -> PatchBaseline:
    """Build and fit the method of `config` on `train`: one state per class (separate) or one for all (unified)."""
    model = METHODS[config.model][0](config).to(device)
    classes = sorted({s.class_name for s in train})
    groups = ({c: [s for s in train if s.class_name == c] for c in classes} if config.mode == "separate"
              else {ALL: list(train)})
    with progress(total=len(train), desc=f"{config.model} ({config.mode})", unit="img") as bar:
        model.fit({name: image_batches(members, config.image_size, batch_size, device, bar.update)
                   for name, members in groups.items()})
    log(f"nipad: {config.model} fitted: " + ", ".join(
        f"{'all classes (one unified model)' if name == ALL else name} {model.describe(i)}"
        for i, name in enumerate(model.groups)))
    return model.eval()


def train_baseline(config: BaselineTraining, data: TrainData, run_dir: Path, *, ctx: Context,
                   overwrite: bool = False) -> None:
    """Fit on the training images (nipad.runs.lifecycle holds out the calibration images and finishes the run)."""
    model_config, settings = config.model, config.train
    if ctx.distributed:
        raise ConfigError(f"{model_config.model} fits in one process; run `nipad train` without torchrun")
    train, held = lifecycle.start(run_dir, data.samples, settings.calibration_fraction, model_config.seed, overwrite)
    print(f"nipad: fitting {model_config.model} ({model_config.mode}) on {len(train)} normal images, {len(held)} held "
          f"out for calibration, into {run_dir}")
    started = time.time()
    model = fit_baseline(model_config, train, ctx.device, settings.batch_size)
    info = RunInfo(model_config, {"seed": model_config.seed, "shots": settings.shots,
                                  "false_alarm_rate": settings.false_alarm_rate,
                                  "calibration_fraction": settings.calibration_fraction},
                   model.class_names, list(data.roots), prompt_classes=model.class_names, family=model_config.model,
                   extra={"groups": model.groups, "n_train": len(train), "n_calibration": len(held),
                          "train_seconds": round(time.time() - started, 1)})
    tensors = model.state_tensors()

    def save(info: RunInfo) -> None:
        integrity.write_file(run_dir, WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
        write_info(run_dir, info)

    lifecycle.finish(run_dir, model, info, save, train, held, settings.false_alarm_rate)


def _read_settings(data: Mapping[str, Any]) -> BaselineConfig:
    return METHODS[data["model"]][1].from_dict(data)


def load_baseline(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[PatchBaseline, RunInfo]:
    """Rebuild a finished PatchCore / PaDiM / kNN run (in eval mode) from its config and fitted tensors."""
    run_dir = Path(run_dir)
    info = read_info(run_dir, _read_settings)
    if not info.finished:
        raise CheckpointError(f"{run_dir} holds an unfinished {info.model.model} run; rerun the same `nipad train`")
    weights = run_dir / WEIGHTS
    tensors = load_weights(run_dir)
    groups = info.extra.get("groups")
    if not isinstance(groups, list):
        raise CheckpointError(f"{run_dir / CONFIG} lists no fitted groups: it is corrupt or from another program; "
                              "retrain into a new folder")
    model = METHODS[info.model.model][0](info.model)
    expected = set(model.state_tensors()) | {f"{k}_{i}" for i in range(len(groups)) for k in model.state_keys}
    if set(tensors) != expected:
        raise CheckpointError(f"{weights} does not match {run_dir / CONFIG} (expected tensors {sorted(expected)}, "
                              f"found {sorted(tensors)[:6]}); the files come from different runs")
    model.load_state(groups, info.classes, tensors)
    return model.to(device).eval(), info
