"""onnxruntime vs PyTorch on CPU: images/s of the exported graph and of the detector, same images, same threads,
plus the largest map difference between the two.

    .venv/bin/python benchmarks/export_speed.py [--run RUN_DIR] [--threads 1] [--batch-sizes 1,8] [--batches 6]

Default run: benchmarks/results/magnetic_tile-onenip (OneNIP, cpu preset, 224x224). Inputs are uint8 images at the
model size (the graph's resize is then an identity), as `nipad predict` feeds both.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from nipad.families import load_run
from nipad.export.onnx_export import export_onnx
from nipad.export.onnx_runner import OnnxDetector
from timing import images_per_second

DEFAULT_RUN = Path(__file__).parent / "results" / "magnetic_tile-onenip"


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--batches", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector, _ = load_run(args.run, "cpu")
    size = detector.config.image_size
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        report = export_onnx(detector, Path(tmp) / "model.onnx", run_dir=args.run)
        export_s = time.perf_counter() - started
        onnx = OnnxDetector(report.onnx_path, threads=args.threads)
        print(f"{args.run.name}: {detector.config.model}, {size}x{size}, --threads {args.threads}; export "
              f"{export_s:.1f} s, max |map diff| {report.max_map_diff:.1e}")
        print(f"{'batch':>5} {'PyTorch img/s':>14} {'onnxruntime img/s':>18} {'speed-up':>9}")
        rng = np.random.default_rng(0)
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            images = rng.integers(0, 256, (batch, 3, size, size), dtype=np.uint8)
            torch_rate = images_per_second(detector, torch.from_numpy(images), args.batches)
            onnx_rate = images_per_second(onnx, images, args.batches)
            print(f"{batch:>5} {torch_rate:>14.1f} {onnx_rate:>18.1f} {onnx_rate / torch_rate:>8.2f}x")


if __name__ == "__main__":
    main()
