"""`nipad train`: one model for every class of every --data root."""

from __future__ import annotations

import argparse

from nipad.cli.common import add_data_args, open_data
from nipad.data import kshot
from nipad.engine import distributed
from nipad.engine.families import all_models, family_of_model
from nipad.models.anomalysd.family import add_arguments as add_anomalysd_arguments
from nipad.models.config import PRESETS
from nipad.models.neck import NECKS
from nipad.models.patch_baseline import MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model for all classes of the given data sets")
    add_data_args(p)
    p.add_argument("--model", choices=all_models(), default="onenip")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (resumed if it holds an unfinished run)")
    p.add_argument("--preset", choices=sorted(PRESETS), default=None,
                   help="model size and schedule: `paper` (GPU) or `cpu` (default: paper with a GPU, else cpu)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--image-size", type=int)
    p.add_argument("--backbone", help="lite0 (default), lite1, lite2, or a timm EfficientNet name with --backbone-weights")
    p.add_argument("--backbone-weights", metavar="PATH", help="local weights file for the backbone")
    p.add_argument("--neck", choices=NECKS, help="how the backbone's maps become tokens: pooled (3x3 local average, "
                   "then area pooling; cpu preset) or mfcn (the authors' bilinear resize; paper preset)")
    p.add_argument("--decoder", choices=("dynamic", "static"), help="OneNIP prompt decoder (ablation: static)")
    p.add_argument("--no-restoration", action="store_true", help="ablation: no pseudo-anomaly restoration stream")
    p.add_argument("--no-refiner", action="store_true", help="ablation: no supervised refiner")
    p.add_argument("--texture-dir", metavar="DIR", help="texture images for the Perlin pseudo anomalies (e.g. DTD)")
    p.add_argument("--synthetic-pool", type=int, metavar="V",
                   help="V fixed pseudo-anomaly variants per image (0: a fresh one every step)")
    p.add_argument("--shots", type=int, metavar="K", help="train on K normal images per class")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--workers", type=int, help="data-loading processes")
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


def run(args: argparse.Namespace) -> int:
    ctx = distributed.setup(args.device)
    try:
        dataset = open_data(args.data, args.classes)
        seed = 133 if args.seed is None else args.seed
        samples = (dataset.train if args.shots is None else
                   kshot(dataset.train, args.shots, seed) if args.shots else [])  # --shots 0: zero-shot models
        if ctx.is_main:
            print(dataset.describe())
        family_of_model(args.model).train(args, dataset, samples, ctx)
        if ctx.is_main:
            print(f"nipad: done; evaluate with `nipad test {args.out} --data {' --data '.join(args.data)}`")
        return 0
    finally:
        distributed.teardown(ctx)
