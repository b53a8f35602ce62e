"""OneNIP and UniAD, one family ("reconstruction" in config.json): their `nipad train` options, the preset those go
over, training by nipad.engine.trainer and loading by nipad.runs.checkpoint (both imported only when used)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nipad.engine.train_config import TrainConfig, train_preset
from nipad.families.flags import AT_LEAST_0, AT_LEAST_1, POSITIVE, SHARE, flag
from nipad.families.registry import CommonOptions, Family, register
from nipad.models.names import NECKS, RECONSTRUCTION
from nipad.models.onenip.model_config import (
    DECODERS,
    FUSIONS,
    PRESETS,
    SCORE_MAPS,
    ModelConfig,
    preset,
)

if TYPE_CHECKING:
    import torch

    from nipad.data.train_data import TrainData
    from nipad.engine.distributed import Context
    from nipad.models.onenip.detector import Detector
    from nipad.runs.run_info import RunInfo


@dataclass(frozen=True)
class UniADOptions:
    """The flags UniAD takes besides the common ones; OneNIP takes these and its own."""

    preset: str | None = flag(
        choices=sorted(PRESETS),
        help="onenip/uniad: `nipad` (nipad's own model: the cpu network with prompt-token matching and the validated "
             "fusion; default without a GPU), `cpu` (the authors' method at a CPU budget) or `paper` (the authors' "
             "OneNIP exactly; default with a GPU)")
    epochs: int | None = flag(allowed=AT_LEAST_1)
    max_steps: int | None = flag(metavar="N", allowed=AT_LEAST_0,
                                 help="onenip/uniad: train fewer epochs where --epochs would take more than about N "
                                      "optimiser steps (nipad preset: 3200; 0: no budget; given --epochs: 0)")
    lr: float | None = flag(allowed=POSITIVE)
    warmup_steps: int | None = flag(metavar="N", allowed=AT_LEAST_0,
                                    help="onenip/uniad: raise the lr linearly over the first N optimiser steps (0: "
                                         "none, the authors' schedule)")
    neck: str | None = flag(choices=NECKS, help="how the backbone's maps become tokens: pooled (3x3 local average, "
                            "then area pooling; cpu preset) or mfcn (the authors' bilinear resize; paper preset)")
    fusion: str | None = flag(
        choices=FUSIONS,
        help="onenip/uniad: `fixed` (the authors' (1 - W) rec + W c ref) or `validated` (each map standardised on "
             "held-out normals; the maps that detect the run's validation pseudo anomalies averaged; nipad preset)")
    fp32: bool = flag(False, help="onenip/uniad: train in float32 where bfloat16 autocast would run natively (CUDA, "
                      "CPUs with AVX512-BF16/AMX)")


@dataclass(frozen=True)
class OneNIPOptions(UniADOptions):
    decoder: str | None = flag(choices=DECODERS, help="OneNIP prompt decoder (ablation: static)")
    no_restoration: bool = flag(False, help="ablation: no pseudo-anomaly restoration stream")
    no_refiner: bool = flag(False, help="ablation: no supervised refiner")
    mask_final_attention: bool = flag(False, help="onenip: neighbour-mask the decoder's final prompt -> image "
                                      "attention too (the authors leave it unmasked)")
    fusion_weight: float | None = flag(metavar="W", allowed=SHARE,
                                       help="onenip: the anomaly map is (1 - W) x the reconstruction map + W x c x "
                                            "the refiner's with --fusion fixed (0.5, the authors')")
    prompt_matching: bool | None = flag(help="onenip: add each token's distance to the nearest token of its class's "
                                        "prompts as a map (nipad preset: on; needs --fusion validated)")
    match_coreset: float | None = flag(metavar="R", allowed=SHARE,
                                       help="onenip: match against a greedy coreset of this share of each class's "
                                            "training tokens (nipad preset: 0.1; 0: the prompts' tokens only)")
    score_map: str | None = flag(choices=SCORE_MAPS, help="onenip: the image score is the peak of the `anomaly` map "
                                 "or of the `match` map where it passes validation (nipad preset: match)")
    texture_dir: str | None = flag(metavar="DIR", help="texture images for the Perlin pseudo anomalies (e.g. DTD)")
    synthetic_pool: int | None = flag(metavar="V", allowed=AT_LEAST_0,
                                      help="V fixed pseudo-anomaly variants per image (0: a fresh one every step)")
    prompt_neighbours: int | None = flag(metavar="K", allowed=AT_LEAST_0,
                                         help="onenip: train each image with one of its K most similar images of its "
                                              "class as the prompt (0: a random one, the authors' way)")
    prompts_per_class: int | None = flag(metavar="P", allowed=AT_LEAST_1,
                                         help="onenip: prompts kept per class for the test-time choice by cosine "
                                              "similarity (the most typical, then ones that cover the class)")
    workers: int | None = flag(allowed=AT_LEAST_0, help="data-loading processes")


@dataclass(frozen=True)
class ReconstructionTraining:
    """Model and training settings; `preset` names the preset they came from (for the log)."""

    model: ModelConfig
    train: TrainConfig
    preset: str


def default_preset(device: torch.device) -> str:
    """`paper` (the authors' OneNIP) where a GPU trains it; nipad's own model, `nipad`, on a CPU."""
    return "paper" if device.type == "cuda" else "nipad"


def configure(model: str, options: UniADOptions, common: CommonOptions,
              device: torch.device) -> ReconstructionTraining:
    """The preset (default: paper with a GPU, else nipad) with the given flags over it; UniAD's unset OneNIP options
    keep the preset's values."""
    own = options if isinstance(options, OneNIPOptions) else OneNIPOptions(**asdict(options))
    name = own.preset or default_preset(device)
    model_config = preset(
        name, model, image_size=common.image_size, backbone=common.backbone,
        backbone_weights=common.backbone_weights, neck=own.neck, decoder=own.decoder,
        restoration=False if own.no_restoration else None, refiner=False if own.no_refiner else None,
        fusion_weight=own.fusion_weight, fusion=own.fusion, prompt_matching=own.prompt_matching,
        match_coreset=own.match_coreset, score_map=own.score_map,
        mask_final_attention=True if own.mask_final_attention else None,
    )
    train = train_preset(
        name, epochs=own.epochs, max_steps=own.max_steps, batch_size=common.batch_size, lr=own.lr,
        warmup_steps=own.warmup_steps,
        texture_dir=own.texture_dir, synthetic_pool=own.synthetic_pool, prompt_neighbours=own.prompt_neighbours,
        prompts_per_class=own.prompts_per_class, shots=common.shots, seed=common.seed, workers=own.workers,
        device=common.device, false_alarm_rate=common.false_alarm_rate, amp=False if own.fp32 else None,
    )
    return ReconstructionTraining(model_config, train, name)


def train(config: ReconstructionTraining, data: TrainData, run_dir: Path, *, ctx: Context,
          overwrite: bool = False) -> None:
    from nipad.engine.trainer import Trainer

    if ctx.is_main:
        print(f"nipad: training {config.model.model} ({config.preset} preset) into {run_dir}")
    Trainer(config.model, config.train, run_dir, ctx, overwrite=overwrite, preset=config.preset).fit(data.samples,
                                                                                                  data.roots)


def load(run_dir: str | Path, device: torch.device | str = "cpu") -> tuple[Detector, RunInfo]:
    from nipad.runs.checkpoint import load_detector

    return load_detector(run_dir, device)


FAMILY = register(Family(RECONSTRUCTION, {"onenip": OneNIPOptions, "uniad": UniADOptions}, configure, train, load))
