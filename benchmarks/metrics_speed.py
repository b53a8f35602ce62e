"""Wall time of the full evaluation protocol on synthetic data shaped like MVTec AD's test set.

1,725 images at 224x224 (86.5 M pixels) in 15 classes with MVTec's per-class test counts, ~70% anomalous with a
few elliptic blob masks each; maps = Gaussian-smoothed noise plus a signal inside the blobs. Target: < 60 s.
Run: python benchmarks/metrics_speed.py [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from scipy import ndimage

from nipad.metrics import ClassInputs, evaluate, format_table

MVTEC_TEST_COUNTS = {
    "bottle": 83, "cable": 150, "capsule": 132, "carpet": 117, "grid": 78, "hazelnut": 110, "leather": 124,
    "metal_nut": 115, "pill": 167, "screw": 160, "tile": 117, "toothbrush": 42, "transistor": 100, "wood": 79,
    "zipper": 151,
}  # fmt: skip
SIZE = 224
TARGET_S = 60.0


def blob_masks(rng: np.random.Generator, n: int, anomalous: np.ndarray) -> np.ndarray:
    """1-3 random ellipses per anomalous image, none in normal ones."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    masks = np.zeros((n, SIZE, SIZE), dtype=bool)
    for i in np.flatnonzero(anomalous):
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(20, SIZE - 20, size=2)
            ry, rx = rng.uniform(3, 25, size=2)
            masks[i] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
    return masks


def synthetic_class(rng: np.random.Generator, n: int) -> ClassInputs:
    anomalous = rng.random(n) < 0.7
    masks = blob_masks(rng, n, anomalous)
    maps = rng.standard_normal((n, SIZE, SIZE), dtype=np.float32)
    maps = ndimage.gaussian_filter(maps, sigma=(0, 4, 4)) * 4.0
    maps += ndimage.gaussian_filter(masks.astype(np.float32), sigma=(0, 2, 2)) * rng.uniform(0.5, 2.0)
    scores = maps.reshape(n, -1).max(axis=1)
    return ClassInputs(image_scores=scores, image_labels=anomalous.astype(np.int64), anomaly_maps=maps, masks=masks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    inputs = {name: synthetic_class(rng, n) for name, n in MVTEC_TEST_COUNTS.items()}
    n_pixels = sum(ci.masks.size for ci in inputs.values())
    print(f"synthetic data: {sum(MVTEC_TEST_COUNTS.values())} images, {n_pixels / 1e6:.1f} M pixels, "
          f"{len(inputs)} classes (built in {time.perf_counter() - start:.1f} s)")
    start, cpu_start = time.perf_counter(), time.process_time()
    results = evaluate(inputs, image_size=(SIZE, SIZE), meta={"benchmark": "synthetic"})
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    print(format_table(results))
    verdict = "within" if wall < TARGET_S else "OVER"
    print(f"full protocol wall time: {wall:.1f} s ({wall / TARGET_S:.0%} of the {TARGET_S:.0f} s target, {verdict}); "
          f"CPU time {cpu:.1f} s (wall > CPU means other processes shared the cores)")
    assert "torch" not in sys.modules, "the metrics must not import torch"


if __name__ == "__main__":
    main()
