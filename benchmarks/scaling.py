"""Cost as the number of products grows: run size on disk, inference images/s and inference peak memory of nipad's
default (OneNIP, nipad preset) and of unified PatchCore, for 1, 5, 15 and 50 products.

    .venv/bin/python benchmarks/scaling.py [--products 1,5,15,50] [--shots 5] [--threads 2] [--json OUT]

Products are four of the shared ones (../shared/datasets) repeated under new names (p00_bottle, p01_magnetic_tile, ...;
symbolic links, no copies), each trained on `--shots` normal images, so the training set grows with the products
as a line's would. What is measured is cost, not accuracy: OneNIP trains one epoch over a pool of one pseudo
anomaly per image. Inference: the same 32 test images (8 of each shared product) at batch 8, in a fresh process
per run so its peak resident memory (ru_maxrss) is the run's own (python, torch and the backbone included).
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
SHARED = HERE.parent.parent / "shared" / "datasets"
PRODUCTS = ("mvtec_bottle", "magnetic_tile", "mvtec3d_tire", "mvtec_loco_juice_bottle")  # the four with masks: one
# root of many classes reads as one data set, which then wants masks for every class
TRAIN = {"onenip": ["--preset", "nipad", "--epochs", "1", "--synthetic-pool", "1"], "patchcore": []}


def class_dir(product: str) -> Path:
    """The MVTec class folder of a shared product (the folder that holds train/)."""
    root = SHARED / product
    return root if (root / "train").is_dir() else next(p for p in sorted(root.iterdir()) if (p / "train").is_dir())


def make_products(n: int, root: Path) -> Path:
    """ROOT/p<i>_<name> -> the i-th shared product (cycling), as symbolic links."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for i in range(n):
        source = class_dir(PRODUCTS[i % len(PRODUCTS)])
        (root / f"p{i:02d}_{source.name}").symlink_to(source.resolve(), target_is_directory=True)
    return root


def measure(run_dir: Path, threads: int) -> dict:
    """In a fresh process: images/s over the fixed test images and the process's peak memory."""
    import torch

    from nipad.cli.common import open_data
    from nipad.engine.evaluate import infer
    from nipad.families import load_run

    torch.set_num_threads(threads)
    model, _ = load_run(run_dir)
    samples = [s for p in PRODUCTS for s in open_data([str(SHARED / p)], None).test[:8]]
    with torch.inference_mode():
        infer(model, samples[:8])  # warm-up
        started = time.perf_counter()
        infer(model, samples)
        rate = len(samples) / (time.perf_counter() - started)
    return {"images_per_second": round(rate, 2),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", default="1,5,15,50")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/nipad-scaling"))
    parser.add_argument("--json", type=Path)
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.threads)))
        return
    nipad = str(Path(sys.executable).parent / "nipad")
    rows = []
    for n in (int(x) for x in args.products.split(",")):
        data = make_products(n, args.work / f"data{n}")
        for model, extra in TRAIN.items():
            run = args.work / f"run-{model}-{n}"
            started = time.perf_counter()
            subprocess.run([nipad, "train", "--data", str(data), "--model", model, "--out", str(run), "--shots",
                            str(args.shots), "--overwrite", *extra], check=True, capture_output=True)
            train_seconds = time.perf_counter() - started
            size = sum(f.stat().st_size for f in run.rglob("*") if f.is_file())
            cost = json.loads(subprocess.run([sys.executable, __file__, "--measure", str(run), "--threads",
                                              str(args.threads)], check=True, capture_output=True, text=True)
                              .stdout.strip().splitlines()[-1])
            rows.append({"products": n, "model": model, "train_images": n * args.shots,
                         "train_seconds": round(train_seconds, 1), "run_mib": round(size / 2**20, 2), **cost})
            print(f"{n:3d} products  {model:9s}  run {rows[-1]['run_mib']:8.2f} MiB  "
                  f"{cost['images_per_second']:6.2f} images/s  peak {cost['peak_rss_mib']:7.0f} MiB  "
                  f"(train {train_seconds:.0f} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"shots": args.shots, "threads": args.threads, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
