"""`nipad train`: one model for every class of every --data root."""

from __future__ import annotations

import argparse
from pathlib import Path

from nipad.cli.common import add_data_args, open_data
from nipad.models.anomalysd.config import PERCEPTUAL
from nipad.models.onenip.model_config import FUSIONS, PRESETS, SCORE_MAPS
from nipad.models.names import MODELS, MODES, NECKS, SEED


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model for all classes of the given data sets")
    add_data_args(p)
    p.add_argument("--model", choices=MODELS, default="onenip")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (resumed if it holds an unfinished run)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="onenip/uniad: `nipad` (nipad's own model: the cpu network with prompt-token "
                   "matching and the validated fusion; default without a GPU), `cpu` (the authors' method at a CPU "
                   "budget) or `paper` (the authors' OneNIP exactly; default with a GPU)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--warmup-steps", type=int, metavar="N", help="onenip/uniad: raise the lr linearly over the first N "
                   "optimiser steps (0: none, the authors' schedule)")
    p.add_argument("--image-size", type=int)
    p.add_argument("--backbone", help="lite0 (default), lite1, lite2, or a timm EfficientNet name with --backbone-weights")
    p.add_argument("--backbone-weights", metavar="PATH", help="local weights file for the backbone")
    p.add_argument("--neck", choices=NECKS, help="how the backbone's maps become tokens: pooled (3x3 local average, "
                   "then area pooling; cpu preset) or mfcn (the authors' bilinear resize; paper preset)")
    p.add_argument("--decoder", choices=("dynamic", "static"), help="OneNIP prompt decoder (ablation: static)")
    p.add_argument("--no-restoration", action="store_true", help="ablation: no pseudo-anomaly restoration stream")
    p.add_argument("--no-refiner", action="store_true", help="ablation: no supervised refiner")
    p.add_argument("--mask-final-attention", action="store_true", help="onenip: neighbour-mask the decoder's final "
                   "prompt -> image attention too (the authors leave it unmasked)")
    p.add_argument("--fusion-weight", type=float, metavar="W", help="onenip: the anomaly map is (1 - W) x the "
                   "reconstruction map + W x c x the refiner's with --fusion fixed (0.5, the authors')")
    p.add_argument("--fusion", choices=FUSIONS, help="onenip/uniad: `fixed` (the authors' (1 - W) rec + W c ref) "
                   "or `validated` (each map standardised on held-out normals; the maps that detect the run's "
                   "validation pseudo anomalies averaged; nipad preset)")
    p.add_argument("--prompt-matching", action=argparse.BooleanOptionalAction, default=None,
                   help="onenip: add each token's distance to the nearest token of its class's prompts as a map "
                   "(nipad preset: on; needs --fusion validated)")
    p.add_argument("--match-coreset", type=float, metavar="R",
                   help="onenip: match against a greedy coreset of this share of each class's training tokens "
                   "(nipad preset: 0.1; 0: the prompts' tokens only)")
    p.add_argument("--score-map", choices=SCORE_MAPS, help="onenip: the image score is the peak of the `anomaly` "
                   "map or of the `match` map where it passes validation (nipad preset: match)")
    p.add_argument("--texture-dir", metavar="DIR", help="texture images for the Perlin pseudo anomalies (e.g. DTD)")
    p.add_argument("--synthetic-pool", type=int, metavar="V",
                   help="V fixed pseudo-anomaly variants per image (0: a fresh one every step)")
    p.add_argument("--prompt-neighbours", type=int, metavar="K", help="onenip: train each image with one of its K "
                   "most similar images of its class as the prompt (0: a random one, the authors' way)")
    p.add_argument("--prompts-per-class", type=int, metavar="P", help="onenip: prompts kept per class for the "
                   "test-time choice by cosine similarity (the most typical, then ones that cover the class)")
    p.add_argument("--shots", type=int, metavar="K", help="train on K normal images per class")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--workers", type=int, help="data-loading processes")
    p.add_argument("--fp32", action="store_true", help="onenip/uniad: train in float32 where bfloat16 autocast "
                   "would run natively (CUDA, CPUs with AVX512-BF16/AMX)")
    p.add_argument("--false-alarm-rate", type=float, metavar="RATE",
                   help="target false alarm rate of the thresholds set on held-out normal images (default 0.01)")
    p.add_argument("--overwrite", action="store_true", help="replace a finished run in RUN_DIR")
    p.add_argument("--mode", choices=MODES, help="patchcore/padim: one model per class, the class given at test "
                   "time (separate), or one for all classes (unified, default)")
    p.add_argument("--coreset-ratio", type=float, metavar="R",
                   help="patchcore: fraction of the training patches kept in the memory bank (default 0.01)")
    p.add_argument("--padim-dims", type=int, metavar="D", help="padim: random feature channels used (default 100)")
    add_anomalysd_arguments(p)
    p.set_defaults(run=run)


def add_anomalysd_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags only AnomalySD reads (it also reads --shots, --epochs, --batch-size, --lr, --image-size,
    --backbone, --seed and --false-alarm-rate)."""
    g = parser.add_argument_group("anomalysd (--model anomalysd --shots K)")
    g.add_argument("--sd-model", metavar="PATH",
                   help="local diffusers-format Stable Diffusion inpainting folder (nothing is downloaded)")
    g.add_argument("--sd-steps", type=int, metavar="T", help="denoising schedule length T (default 50)")
    g.add_argument("--sd-lambda", action="append", metavar="[CLASS=]VALUE",
                   help="noise strength: denoising starts at step lambda*T (default 0.4); CLASS=VALUE for one class; "
                        "repeatable")
    g.add_argument("--sd-scales", metavar="K,K,...", help="k x k mask grids (default 1,2,4,8)")
    g.add_argument("--sd-mask-batch", type=int, metavar="N", help="inpaintings per UNet batch (default 8)")
    g.add_argument("--sd-prompts", metavar="YAML", help="extra class prompts (format of anomalysd/prompts.yaml)")
    g.add_argument("--sd-decoder-epochs", type=int, metavar="N", help="also fine-tune the VAE decoder (paper: 200; default 0)")
    g.add_argument("--perceptual", choices=PERCEPTUAL,
                   help="distance of the anomaly maps and the decoder loss: lpips (AlexNet LPIPS, the paper's; the "
                        "default where scripts/setup.sh converted its weights) or lite0 (EfficientNet-Lite0 stand-in)")
    g.add_argument("--sd-save-minutes", type=float, metavar="M",
                   help="save the fine-tuning state for resuming at most every M minutes (default 10; 0: every epoch)")


def run(args: argparse.Namespace) -> int:
    from nipad.cli.train_args import training_config
    from nipad.data import kshot
    from nipad.engine import distributed
    from nipad.engine.families import family_of_model
    from nipad.engine.family import TrainData
    from nipad.utils.io import check_writable

    ctx = distributed.setup(args.device)
    try:
        dataset = open_data(args.data, args.classes)
        seed = SEED if args.seed is None else args.seed
        samples = (dataset.train if args.shots is None else
                   kshot(dataset.train, args.shots, seed) if args.shots else [])  # --shots 0: zero-shot models
        if ctx.is_main:
            print(dataset.describe())
        config = training_config(args, ctx.device)
        if ctx.is_main:
            check_writable(args.out)  # a read-only --out fails now, not at the first checkpoint
        data = TrainData(samples, list(dataset.classes), [str(root) for root in args.data])
        family_of_model(args.model).train(config, data, Path(args.out), ctx=ctx, overwrite=args.overwrite)
        if ctx.is_main:
            print(f"nipad: done; evaluate with `nipad test {args.out} --data {' --data '.join(args.data)}`")
        return 0
    finally:
        distributed.teardown(ctx)
