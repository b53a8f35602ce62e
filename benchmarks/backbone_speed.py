"""Images per second of the frozen backbone + MFCN neck (CPU, 2 threads, batch 8, 224x224) for lite0/lite1/lite2.

Run: python benchmarks/backbone_speed.py [--names lite0 lite1 lite2] [--batches 5]
"""

from __future__ import annotations

import argparse
import time

import torch

from nipad.models.backbone import create_backbone
from nipad.models.neck import MFCN, FeatureExtractor


def images_per_second(name: str, batch: int, size: int, batches: int) -> tuple[float, tuple[int, ...]]:
    """Mean throughput over `batches` timed batches after one warm-up batch; also the neck output shape."""
    extractor = FeatureExtractor(create_backbone(name), MFCN())
    images = torch.rand(batch, 3, size, size)
    shape = tuple(extractor(images).shape)
    start = time.perf_counter()
    for _ in range(batches):
        extractor(images)
    return batch * batches / (time.perf_counter() - start), shape


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--names", nargs="+", default=["lite0", "lite1", "lite2"])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads={args.threads} batch={args.batch} size={args.size} timed batches={args.batches}")
    for name in args.names:
        rate, shape = images_per_second(name, args.batch, args.size, args.batches)
        print(f"{name}: {rate:6.1f} images/s  neck output {shape}")


if __name__ == "__main__":
    main()
