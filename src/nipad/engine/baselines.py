"""PatchCore, PaDiM and kNN as model families: `nipad train --model patchcore|padim|knn [--mode separate|unified]`.

Their run directory: config.json ("family", model settings, classes, groups, timing), model.safetensors (the fitted
banks / Gaussians and class-mean descriptors; the frozen backbone is rebuilt from its weights) and calibration.json
(thresholds from held-out normal training images, as the reconstruction trainer does), each file's hash in
manifest.json (nipad.engine.integrity). Written atomically, config last, so a run without `"finished": true` never
loads.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from nipad import __version__
from nipad.data.sample import Sample
from nipad.data.torch_dataset import ImageDataset, collate_skip_bad
from nipad.engine import integrity
from nipad.engine.calibration import calibrate
from nipad.engine.checkpoint import CONFIG, WEIGHTS
from nipad.engine.distributed import Context
from nipad.engine.train_config import TrainConfig
from nipad.engine.trainer import split_calibration
from nipad.errors import CheckpointError, ConfigError, DataError, NipadError
from nipad.models.knn import Knn, KnnConfig
from nipad.models.padim import Padim, PadimConfig
from nipad.models.patch_baseline import ALL, BaselineConfig, PatchBaseline
from nipad.models.patchcore import PatchCore, PatchCoreConfig
from nipad.models.registry import Family, register

METHODS: dict[str, tuple[type[PatchBaseline], type[BaselineConfig]]] = {
    "patchcore": (PatchCore, PatchCoreConfig),
    "padim": (Padim, PadimConfig),
    "knn": (Knn, KnnConfig),
}
# train options of OneNIP / UniAD that mean nothing to a baseline
RECONSTRUCTION_OPTIONS = ("preset", "epochs", "lr", "neck", "decoder", "no_restoration", "no_refiner",
                          "texture_dir", "synthetic_pool")
# baseline option -> (the method it belongs to, its config field)
METHOD_OPTIONS = {"coreset_ratio": ("patchcore", "coreset_ratio"), "padim_dims": ("padim", "dims")}


@dataclass
class BaselineInfo:
    """Contents of a baseline run's config.json (the fields `RunInfo` has that make sense here)."""

    model: BaselineConfig
    train: dict[str, Any]
    classes: list[str]
    data: list[str]
    groups: list[str]
    finished: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_classes(self) -> list[str]:
        return self.classes

    def to_dict(self) -> dict[str, Any]:
        return {"nipad_version": __version__, "family": self.model.model, "model": self.model.to_dict(),
                "train": self.train, "classes": self.classes, "data": self.data, "groups": self.groups,
                "finished": self.finished, "prompt_classes": self.classes, **self.extra}


def config_from_args(args: Any) -> BaselineConfig:
    """The method's settings from `nipad train` arguments (unset ones keep the defaults); warns about options that
    do not apply to it."""
    given = [o for o in RECONSTRUCTION_OPTIONS if getattr(args, o, None) not in (None, False)]
    given += [o for o, (method, _) in METHOD_OPTIONS.items() if method != args.model and getattr(args, o, None)]
    for option in given:
        warnings.warn(f"--{option.replace('_', '-')} does not apply to {args.model}; ignored", stacklevel=2)
    settings = {"mode": args.mode, "backbone": args.backbone, "backbone_weights": args.backbone_weights,
                "image_size": args.image_size, "seed": args.seed}
    settings.update({name: getattr(args, o, None) for o, (method, name) in METHOD_OPTIONS.items()
                     if method == args.model})
    return METHODS[args.model][1](**{k: v for k, v in settings.items() if v is not None})


def image_batches(samples: Sequence[Sample], image_size: int, batch_size: int, device: torch.device,
                  progress: Callable[[int], None]) -> Iterator[tuple[Tensor, list[str]]]:
    """(uint8 images on `device`, class names) of the readable `samples` (unreadable ones warn and are left out)."""
    loader = DataLoader(ImageDataset(samples, image_size, skip_bad=True), batch_size=batch_size,
                        collate_fn=collate_skip_bad)
    for batch in loader:
        progress(len(batch["class_name"]) + len(batch["skipped"]))
        yield batch["image"].to(device), batch["class_name"]


def _check_out(run_dir: Path, overwrite: bool) -> None:
    path = run_dir / CONFIG
    if path.is_file() and not overwrite:
        try:
            finished = json.loads(path.read_text(encoding="utf-8")).get("finished", False)
        except json.JSONDecodeError:
            finished = False
        if finished:
            raise ConfigError(f"{run_dir} already holds a finished run; choose another --out or pass --overwrite")


def fit_baseline(config: BaselineConfig, train: Sequence[Sample], device: torch.device, batch_size: int = 8,
                 log: Callable[[str], None] = print) -> PatchBaseline:
    """Build and fit the method of `config` on `train`: one state per class (separate) or one for all (unified)."""
    model = METHODS[config.model][0](config).to(device)
    classes = sorted({s.class_name for s in train})
    groups = ({c: [s for s in train if s.class_name == c] for c in classes} if config.mode == "separate"
              else {ALL: list(train)})
    with tqdm(total=len(train), desc=f"{config.model} ({config.mode})", unit="img", leave=False,
              dynamic_ncols=True) as bar:
        model.fit({name: image_batches(members, config.image_size, batch_size, device, bar.update)
                   for name, members in groups.items()})
    log(f"nipad: {config.model} fitted: " + ", ".join(
        f"{name} {model.describe(i)}" for i, name in enumerate(model.groups)))
    return model.eval()


def train_baseline(args: Any, dataset, samples: Sequence[Sample], ctx: Context) -> None:
    """`nipad train --model patchcore|padim`: fit, save, calibrate on held-out normal images, mark finished."""
    if ctx.distributed:
        raise ConfigError(f"{args.model} fits in one process; run `nipad train` without torchrun")
    run_dir = Path(args.out)
    _check_out(run_dir, args.overwrite)
    config = config_from_args(args)
    defaults = TrainConfig()
    rate = defaults.false_alarm_rate if args.false_alarm_rate is None else args.false_alarm_rate
    train, held = split_calibration(samples, defaults.calibration_fraction, config.seed)
    if not train:
        raise DataError("no training images: every class given is empty")
    print(f"nipad: fitting {config.model} ({config.mode}) on {len(train)} normal images, {len(held)} held out for "
          f"calibration, into {run_dir}")
    started = time.time()
    model = fit_baseline(config, train, ctx.device, args.batch_size or defaults.batch_size)
    info = BaselineInfo(config, {"seed": config.seed, "shots": args.shots, "false_alarm_rate": rate,
                                 "calibration_fraction": defaults.calibration_fraction},
                        model.class_names, list(map(str, args.data)), model.groups, finished=False,
                        extra={"n_train": len(train), "n_calibration": len(held),
                               "train_seconds": round(time.time() - started, 1)})
    tensors = model.state_tensors()
    integrity.write_file(run_dir, WEIGHTS, lambda tmp: save_file(tensors, str(tmp)))
    source = (f"{len(held)} held-out normal training images" if held else
              "the training images themselves (none held out: thresholds may be too low)")
    calibrate(model, held or train, rate, source).save(run_dir)
    info.finished = True
    integrity.write_json(run_dir, CONFIG, info.to_dict())


def read_baseline_info(run_dir: Path) -> BaselineInfo:
    path = run_dir / CONFIG
    integrity.verify(run_dir, CONFIG)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        config = METHODS[data["family"]][1].from_dict(data["model"])
        known = {"nipad_version", "family", "model", "train", "classes", "data", "groups", "finished",
                 "prompt_classes"}
        info = BaselineInfo(config, data["train"], list(data["classes"]), list(data["data"]), list(data["groups"]),
                            bool(data["finished"]), {k: v for k, v in data.items() if k not in known})
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, NipadError) as err:
        raise CheckpointError(f"{path} is corrupt or from another program ({err}); retrain into a new folder") from err
    if not info.finished:
        raise CheckpointError(f"{run_dir} holds an unfinished {config.model} run; rerun the same `nipad train`")
    return info


def load_baseline(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[PatchBaseline, BaselineInfo]:
    """Rebuild a PatchCore / PaDiM run (in eval mode) from its config and fitted tensors."""
    run_dir = Path(run_dir)
    info = read_baseline_info(run_dir)
    weights = run_dir / WEIGHTS
    integrity.verify(run_dir, WEIGHTS)
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights} is missing or corrupt ({err}); retrain into a new folder") from err
    integrity.check_finite(tensors, weights)
    model = METHODS[info.model.model][0](info.model)
    expected = set(model.state_tensors()) | {f"{k}_{i}" for i in range(len(info.groups)) for k in model.state_keys}
    if set(tensors) != expected:
        raise CheckpointError(f"{weights} does not match {run_dir / CONFIG} (expected tensors {sorted(expected)}, "
                              f"found {sorted(tensors)[:6]}); the files come from different runs")
    model.load_state(info.groups, info.classes, tensors)
    return model.to(device).eval(), info


for _name in METHODS:
    register(Family(_name, (_name,), train_baseline, load_baseline))
