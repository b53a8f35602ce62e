"""AnomalySD as a model family: its `nipad train` options (it also reads --shots, --image-size, --backbone, --seed,
--batch-size and --false-alarm-rate), their conversion to the paper's settings, and fine-tuning and loading by
nipad.engine.anomalysd (imported only when used, as are diffusers and transformers)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nipad.errors import ConfigError
from nipad.families.flags import AT_LEAST_0, AT_LEAST_1, POSITIVE, flag
from nipad.families.registry import CommonOptions, Family, register
from nipad.models.anomalysd.config import MODEL, PERCEPTUAL

if TYPE_CHECKING:
    import torch

    from nipad.data.train_data import TrainData
    from nipad.engine.anomalysd import AnomalySDTraining
    from nipad.engine.distributed import Context
    from nipad.models.anomalysd.inference import AnomalySD
    from nipad.runs.run_info import RunInfo


@dataclass(frozen=True)
class AnomalySDOptions:
    """The flags only AnomalySD takes (with --shots K)."""

    epochs: int | None = flag(allowed=AT_LEAST_0)
    lr: float | None = flag(allowed=POSITIVE)
    sd_model: str | None = flag(metavar="PATH", help="local diffusers-format Stable Diffusion inpainting folder "
                                "(nothing is downloaded)")
    sd_steps: int | None = flag(metavar="T", allowed=AT_LEAST_1, help="denoising schedule length T (default 50)")
    sd_lambda: list[str] | None = flag(metavar="[CLASS=]VALUE",
                                       help="noise strength: denoising starts at step lambda*T (default 0.4); "
                                            "CLASS=VALUE for one class; repeatable")
    sd_scales: str | None = flag(metavar="K,K,...", help="k x k mask grids (default 1,2,4,8)")
    sd_mask_batch: int | None = flag(metavar="N", allowed=AT_LEAST_1, help="inpaintings per UNet batch (default 8)")
    sd_prompts: str | None = flag(metavar="YAML", help="extra class prompts (format of anomalysd/prompts.yaml)")
    sd_decoder_epochs: int | None = flag(metavar="N", allowed=AT_LEAST_0,
                                         help="also fine-tune the VAE decoder (paper: 200; default 0)")
    perceptual: str | None = flag(choices=PERCEPTUAL,
                                  help="distance of the anomaly maps and the decoder loss: lpips (AlexNet LPIPS, the "
                                       "paper's; the default where scripts/setup.sh converted its weights) or lite0 "
                                       "(EfficientNet-Lite0 stand-in)")
    sd_save_minutes: float | None = flag(metavar="M", allowed=AT_LEAST_0,
                                         help="save the fine-tuning state for resuming at most every M minutes "
                                              "(default 10; 0: every epoch)")


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


def configure(model: str, options: AnomalySDOptions, common: CommonOptions,
              device: torch.device) -> AnomalySDTraining:
    """The paper's settings unless a flag says otherwise; the perceptual distance is --perceptual, else LPIPS where
    its weights are, else the Lite0 stand-in (with a printed note)."""
    from nipad.engine.anomalysd import AnomalySDTraining
    from nipad.models.anomalysd.config import AnomalySDConfig, FinetuneConfig
    from nipad.models.anomalysd.perceptual import choose

    if common.shots is None:
        raise ConfigError("anomalysd learns from a few normal images per class: pass --shots K (paper: 0, 1, 2, 4)")
    perceptual, note = choose(options.perceptual)
    strength, class_strength = _lambdas(options.sd_lambda)
    given: dict[str, Any] = {
        "image_size": common.image_size, "steps": options.sd_steps, "strength": strength,
        "scales": _scales(options.sd_scales), "mask_batch": options.sd_mask_batch, "backbone": common.backbone,
        "backbone_weights": common.backbone_weights, "seed": common.seed, "perceptual": perceptual,
        "prompts_file": str(Path(options.sd_prompts).resolve()) if options.sd_prompts else None}
    sd_model = str(Path(options.sd_model).resolve()) if options.sd_model else ""
    model_config = AnomalySDConfig(sd_model=sd_model, shots=common.shots, class_strength=class_strength,
                                   **{k: v for k, v in given.items() if v is not None})
    tuning: dict[str, Any] = {"epochs": options.epochs, "decoder_epochs": options.sd_decoder_epochs,
                              "batch_size": common.batch_size, "lr": options.lr, "seed": common.seed}
    extra: dict[str, Any] = {"false_alarm_rate": common.false_alarm_rate, "save_minutes": options.sd_save_minutes}
    config = AnomalySDTraining(model_config, FinetuneConfig(**{k: v for k, v in tuning.items() if v is not None}),
                               **{k: v for k, v in extra.items() if v is not None})
    if note:
        print(f"nipad: note: {note}")
    return config


def train(config: AnomalySDTraining, data: TrainData, run_dir: Path, *, ctx: Context, overwrite: bool = False) -> None:
    from nipad.engine import anomalysd

    anomalysd.train(config, data, run_dir, ctx=ctx, overwrite=overwrite)


def load(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[AnomalySD, RunInfo]:
    from nipad.engine import anomalysd

    return anomalysd.load(run_dir, device)


FAMILY = register(Family(MODEL, {MODEL: AnomalySDOptions}, configure, train, load))
