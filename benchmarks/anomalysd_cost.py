"""AnomalySD's inference cost: UNet evaluations and wall time per image on CPU for the tiny random SD inpainting
model of the tests (the paper's schedule by default), and the evaluations a paper-sized run needs.

    .venv/bin/python benchmarks/anomalysd_cost.py [--images 2] [--image-size 64] [--steps 50] [--strength 0.4]
                                                  [--scales 1,2,4,8] [--mask-batch 8] [--threads 1]

The counts are exact (a forward hook on the UNet) and do not depend on the model's size; the tiny model's times show
how the work splits between the UNet and the rest (VAE, backbone, scheduler), not what a real SD model costs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models" / "anomalysd"))
from anomalysd_tiny_sd import save_tiny_sd

from nipad.models.anomalysd.config import AnomalySDConfig
from nipad.models.anomalysd.build import build_model
from nipad.models.anomalysd.inference import unet_evaluations
from nipad.models.anomalysd.perceptual import choose
from nipad.models.anomalysd.pipeline import load_sd

PAPER = {"scales": (1, 2, 4, 8), "steps": 50, "strength": 0.4}
TEST_IMAGES = {"MVTec AD": 1725, "VisA": 2162}


def stripes(n: int, size: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    xx = np.mgrid[0:size, 0:size][1]
    images = [128 + 60 * np.sin(xx / 3.0 + rng.uniform(0, 6.3))[..., None] + rng.normal(0, 6, (size, size, 3))
              for _ in range(n)]
    return torch.from_numpy(np.clip(np.stack(images), 0, 255).astype(np.uint8)).permute(0, 3, 1, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=PAPER["steps"])
    parser.add_argument("--strength", type=float, default=PAPER["strength"])
    parser.add_argument("--scales", default="1,2,4,8")
    parser.add_argument("--mask-batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scales = tuple(int(k) for k in args.scales.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        sd = save_tiny_sd(Path(tmp) / "sd")
        config = AnomalySDConfig(sd_model=str(sd), shots=1, image_size=args.image_size, steps=args.steps,
                                 strength=args.strength, scales=scales, mask_batch=args.mask_batch,
                                 perceptual=choose(None)[0])
        parts = load_sd(sd)
        shots = stripes(1, args.image_size, 0)
        model = build_model(config, parts, {"stripes": ["A perfect stripes."]}, shots, torch.zeros(1, dtype=torch.long),
                            ["stripes"], "cpu")
    calls: list[int] = []
    unet_time = {"total": 0.0, "start": 0.0}

    def before(module, inputs) -> None:
        unet_time["start"] = time.perf_counter()

    def after(module, inputs, output) -> None:
        calls.append(len(inputs[0]))
        unet_time["total"] += time.perf_counter() - unet_time["start"]

    model.net.register_forward_pre_hook(before)
    model.net.register_forward_hook(after)
    images = stripes(args.images, args.image_size, 1)
    model(images[:1])  # warm-up
    calls.clear()
    unet_time["total"] = 0.0
    started = time.perf_counter()
    model(images)
    per_image = (time.perf_counter() - started) / args.images
    counted = sum(calls) / args.images
    print(f"tiny SD inpainting model, {args.image_size}x{args.image_size}, {args.steps} steps, lambda {args.strength}, "
          f"scales {','.join(map(str, scales))} + prototype mask, mask batch {args.mask_batch}, "
          f"{args.threads} CPU thread(s), {args.images} images")
    print(f"  UNet evaluations per image: {counted:.0f} counted, {unet_evaluations(scales, args.steps, args.strength)}"
          f" by formula, in {len(calls) / args.images:.0f} UNet batches")
    print(f"  wall time per image: {per_image:.2f} s ({100 * unet_time['total'] / args.images / per_image:.0f}% in the UNet)")
    paper = unet_evaluations(PAPER["scales"], PAPER["steps"], PAPER["strength"])
    print(f"paper-sized run (512x512, scales 1,2,4,8 + prototype = 86 masks, 50 steps from lambda 0.4 = 20 each): "
          f"{paper} UNet evaluations per image")
    for name, n in TEST_IMAGES.items():
        print(f"  {name} test set ({n} images): {paper * n:,} UNet evaluations")


if __name__ == "__main__":
    main()
