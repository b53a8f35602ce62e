"""`nipad train` arguments -> the chosen family's typed training config, with one rule for every family: a flag
the model does not read is warned about and ignored."""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from nipad.engine.anomalysd import AnomalySDTraining
from nipad.engine.baselines import METHODS, BaselineTraining
from nipad.engine.families import family_of_model
from nipad.engine.reconstruction import ReconstructionTraining
from nipad.runs.run_info import RECONSTRUCTION as RECONSTRUCTION_FAMILY
from nipad.engine.train_config import TrainConfig, train_preset
from nipad.errors import ConfigError
from nipad.models.anomalysd.config import MODEL as ANOMALYSD
from nipad.models.anomalysd.config import AnomalySDConfig, FinetuneConfig
from nipad.models.anomalysd.perceptual import choose
from nipad.models.onenip.model_config import preset

# the flags each model reads besides those every model reads (--data --classes --out --device --overwrite
# --image-size --backbone --backbone-weights --batch-size --shots --seed --false-alarm-rate)
UNIAD = ("preset", "epochs", "lr", "warmup_steps", "neck", "fp32", "fusion")
READS: dict[str, tuple[str, ...]] = {
    "onenip": (*UNIAD, "decoder", "no_restoration", "no_refiner", "texture_dir", "synthetic_pool", "workers",
               "prompt_neighbours", "prompts_per_class", "fusion_weight", "fusion", "prompt_matching",
               "match_coreset", "score_map",
               "mask_final_attention"),
    "uniad": UNIAD,
    "patchcore": ("mode", "coreset_ratio"),
    "padim": ("mode", "padim_dims"),
    "knn": ("mode",),
    "anomalysd": ("epochs", "lr", "sd_model", "sd_steps", "sd_lambda", "sd_scales", "sd_mask_batch", "sd_prompts",
                  "sd_decoder_epochs", "perceptual", "sd_save_minutes"),
}
FLAGS = sorted({flag for flags in READS.values() for flag in flags})


def warn_unread(args: argparse.Namespace) -> None:
    """Warn about each given flag that the chosen --model does not read."""
    for flag in FLAGS:
        value = getattr(args, flag, None)
        if flag not in READS[args.model] and value is not None and value is not False:  # 0 is a given value
            warnings.warn(f"--{flag.replace('_', '-')} does not apply to {args.model}; ignored", stacklevel=3)


def default_preset(device: torch.device) -> str:
    """`paper` (the authors' OneNIP) where a GPU trains it; nipad's own model, `nipad`, on a CPU."""
    return "paper" if device.type == "cuda" else "nipad"


def reconstruction_training(args: argparse.Namespace, device: torch.device) -> ReconstructionTraining:
    """OneNIP / UniAD: the preset (default: paper with a GPU, else nipad) with the given flags over it."""
    name = args.preset or default_preset(device)
    model = preset(
        name, args.model, image_size=args.image_size, backbone=args.backbone,
        backbone_weights=args.backbone_weights, neck=args.neck, decoder=args.decoder,
        restoration=False if args.no_restoration else None, refiner=False if args.no_refiner else None,
        fusion_weight=args.fusion_weight, fusion=args.fusion, prompt_matching=args.prompt_matching,
        match_coreset=args.match_coreset, score_map=args.score_map,
        mask_final_attention=True if args.mask_final_attention else None,
    )
    train = train_preset(
        name, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
        texture_dir=args.texture_dir,
        synthetic_pool=args.synthetic_pool, prompt_neighbours=args.prompt_neighbours,
        prompts_per_class=args.prompts_per_class, shots=args.shots, seed=args.seed, workers=args.workers,
        device=args.device, false_alarm_rate=args.false_alarm_rate, amp=False if args.fp32 else None,
    )
    return ReconstructionTraining(model, train, name)


def baseline_training(args: argparse.Namespace, device: torch.device) -> BaselineTraining:
    """PatchCore / PaDiM / kNN: the method's defaults with the given flags over them."""
    own = {"coreset_ratio": args.coreset_ratio} if args.model == "patchcore" else (
        {"dims": args.padim_dims} if args.model == "padim" else {})
    settings = {"mode": args.mode, "backbone": args.backbone, "backbone_weights": args.backbone_weights,
                "image_size": args.image_size, "seed": args.seed, **own}
    model = METHODS[args.model][1](**{k: v for k, v in settings.items() if v is not None})
    train = TrainConfig(seed=model.seed).with_overrides(batch_size=args.batch_size or None, shots=args.shots,
                                                        false_alarm_rate=args.false_alarm_rate)
    return BaselineTraining(model, train)


def _lambdas(values: Sequence[str] | None) -> tuple[float | None, dict[str, float]]:
    default, per_class = None, {}
    for text in values or []:
        name, _, value = text.rpartition("=")
        try:
            number = float(value)
        except ValueError as err:
            raise ConfigError(f"--sd-lambda {text!r}: give VALUE or CLASS=VALUE, e.g. 0.4 or screw=0.3") from err
        if name:
            per_class[name] = number
        else:
            default = number
    return default, per_class


def _scales(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(k) for k in text.split(",") if k.strip())
    except ValueError as err:
        raise ConfigError(f"--sd-scales {text!r}: give grid sizes separated by commas, e.g. 1,2,4,8") from err


def anomalysd_training(args: argparse.Namespace, device: torch.device) -> AnomalySDTraining:
    """AnomalySD: the paper's settings unless a flag says otherwise; the perceptual distance is --perceptual, else
    LPIPS where its weights are, else the Lite0 stand-in (with a printed note)."""
    if args.shots is None:
        raise ConfigError("anomalysd learns from a few normal images per class: pass --shots K (paper: 0, 1, 2, 4)")
    perceptual, note = choose(args.perceptual)
    strength, class_strength = _lambdas(args.sd_lambda)
    given = {"image_size": args.image_size, "steps": args.sd_steps, "strength": strength,
             "scales": _scales(args.sd_scales), "mask_batch": args.sd_mask_batch, "backbone": args.backbone,
             "backbone_weights": args.backbone_weights, "seed": args.seed, "perceptual": perceptual,
             "prompts_file": str(Path(args.sd_prompts).resolve()) if args.sd_prompts else None}
    model = AnomalySDConfig(sd_model=str(Path(args.sd_model).resolve()) if args.sd_model else "", shots=args.shots,
                            class_strength=class_strength, **{k: v for k, v in given.items() if v is not None})
    tuning = {"epochs": args.epochs, "decoder_epochs": args.sd_decoder_epochs, "batch_size": args.batch_size,
              "lr": args.lr, "seed": args.seed}
    extra = {"false_alarm_rate": args.false_alarm_rate, "save_minutes": args.sd_save_minutes}
    config = AnomalySDTraining(model, FinetuneConfig(**{k: v for k, v in tuning.items() if v is not None}),
                               **{k: v for k, v in extra.items() if v is not None})
    if note:
        print(f"nipad: note: {note}")
    return config


CONVERTERS: dict[str, Callable[[argparse.Namespace, torch.device], Any]] = {
    RECONSTRUCTION_FAMILY: reconstruction_training,
    ANOMALYSD: anomalysd_training,
    **{method: baseline_training for method in METHODS},
}


def training_config(args: argparse.Namespace, device: torch.device) -> Any:
    """The typed config that `family_of_model(args.model).train` takes, after warning about unread flags; `device`
    is where it will train (the default preset depends on it)."""
    warn_unread(args)
    return CONVERTERS[family_of_model(args.model).name](args, device)
