"""Inference throughput (images/s, batch 8, 224x224, 2 CPU threads) of the detector for both presets, and of the
backbone + neck alone in the same run, so the head's share of the cost is visible.

    .venv/bin/python benchmarks/inference_speed.py [--batches 6] [--threads 2]
"""

from __future__ import annotations

import argparse

import torch

from nipad.models.onenip.model_config import preset
from nipad.models.onenip.detector import Detector
from timing import images_per_second


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images = torch.randint(0, 256, (args.batch_size, 3, 224, 224), dtype=torch.uint8)
    print(f"batch {args.batch_size}, 224x224, {args.threads} threads, {args.batches} timed batches")
    backbone_rate = None
    for name in ("cpu", "paper"):
        for model in ("onenip", "uniad"):
            detector = Detector(preset(name, model)).eval()
            if model == "onenip":
                for c in range(3):  # a pool of three classes' prompts, as after training
                    detector.prompts.add(f"class{c}", detector.features(images[c:c + 1]))
            if backbone_rate is None:
                backbone_rate = images_per_second(detector.features, images, args.batches)
                print(f"{'backbone + neck (lite0)':28s} {backbone_rate:7.1f} images/s")
            rate = images_per_second(detector, images, args.batches)
            head_share = 1 - rate / backbone_rate
            print(f"{model + ' (' + name + ' preset)':28s} {rate:7.1f} images/s   head {100 * head_share:4.0f}% of the time")


if __name__ == "__main__":
    main()
