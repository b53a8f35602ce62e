"""The model families nipad ships, registered with nipad.models.registry, and `load_run` for any run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from nipad.engine import checkpoint
from nipad.engine.distributed import Context
from nipad.engine.train_config import train_preset
from nipad.engine.trainer import Trainer
from nipad.errors import CheckpointError
from nipad.models.config import preset
from nipad.models.registry import Family, all_models, family_named, family_of_model, register

__all__ = ["all_models", "family_of_model", "load_run", "train_reconstruction"]


def train_reconstruction(args: Any, dataset, samples, ctx: Context) -> None:
    """OneNIP / UniAD from the CLI arguments (preset + overrides)."""
    name = args.preset or ("paper" if ctx.device.type == "cuda" else "cpu")
    model_config = preset(
        name, args.model, image_size=args.image_size, backbone=args.backbone,
        backbone_weights=args.backbone_weights, neck=args.neck, decoder=args.decoder,
        restoration=False if args.no_restoration else None, refiner=False if args.no_refiner else None,
    )
    train_config = train_preset(
        name, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, texture_dir=args.texture_dir,
        synthetic_pool=args.synthetic_pool, shots=args.shots, seed=args.seed, workers=args.workers,
        device=args.device, false_alarm_rate=args.false_alarm_rate,
    )
    if ctx.is_main:
        print(f"nipad: training {args.model} ({name} preset) into {args.out}")
    Trainer(model_config, train_config, args.out, ctx, overwrite=args.overwrite).fit(samples, args.data)


register(Family("reconstruction", ("onenip", "uniad"), train_reconstruction, checkpoint.load_detector))
import nipad.models.anomalysd.family  # noqa: E402, F401  (registers the anomalysd family)
import nipad.engine.baselines  # noqa: E402, F401  (registers the patchcore and padim families)


def load_run(run_dir: str | Path, device: torch.device | str = "cpu"):
    """Load any run directory with its family's loader: returns (model in eval mode, run info)."""
    path = Path(run_dir) / checkpoint.CONFIG
    if not path.is_file():
        checkpoint.read_info(run_dir)  # raises the clear "not a run directory" error
    try:
        family = json.loads(path.read_text(encoding="utf-8")).get("family", "reconstruction")
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{path} is corrupt ({err}); retrain into a new folder") from err
    return family_named(family).load(run_dir, device)
