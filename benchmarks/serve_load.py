"""Load test of `nipad serve`: a bounded number of concurrent /predict requests from this process to the service in
a second process on loopback; throughput, p50/p99 latency and errors, against `nipad predict`-style in-process
inference (nipad.engine.predict.predict, batches of --max-batch) on the same images and threads.

    .venv/bin/python benchmarks/serve_load.py [--run RUN_DIR] [--images DIR] [--requests 160] [--concurrency 8]
        [--threads 1] [--max-batch 8] [--max-wait-ms 10]

Default run: benchmarks/results/magnetic_tile-onenip; default images: magnetic_tile test images from shared/
(one image per request, cycled). The service is started and stopped by this script (a free port on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RUN = ROOT / "benchmarks" / "results" / "magnetic_tile-onenip"
DEFAULT_IMAGES = [p / "datasets" / "magnetic_tile" for p in (ROOT / "shared", ROOT.parent / "shared")]


def calibrated(run: Path, images: Path, tmp: Path, threads: int) -> Path:
    """`run` itself if it has calibration.json, else a copy of it calibrated on 64 normal training images."""
    if (run / "calibration.json").is_file():
        return run
    import shutil

    import torch

    from nipad.data import open_dataset
    from nipad.engine.calibration import calibrate
    from nipad.families import load_run

    copy = tmp / run.name
    copy.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy2(run / name, copy / name)
    torch.set_num_threads(threads)
    model, _ = load_run(copy, "cpu")
    calibrate(model, open_dataset(images).train[:64]).save(copy)
    return copy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace, port: int, log) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "nipad.cli.main", "serve", str(args.run), "--port", str(port), "--device", "cpu",
           "--threads", str(args.threads), "--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms),
           "--log-level", "warning"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the service did not start (exit code {proc.poll()}); see its log {log.name}")


def load(url: str, files: list[tuple[str, bytes]], n: int, concurrency: int) -> tuple[float, list[float], int]:
    """Send n requests (one image each), at most `concurrency` at once; (wall seconds, latencies, errors)."""
    latencies: list[float] = []
    errors = 0
    with httpx.Client(timeout=120, limits=httpx.Limits(max_connections=concurrency)) as client:
        def one(i: int) -> tuple[float, bool]:
            name, data = files[i % len(files)]
            started = time.perf_counter()
            try:
                ok = client.post(url, files=[("files", (name, data, "image/png"))]).status_code == 200
            except httpx.HTTPError:
                ok = False
            return time.perf_counter() - started, ok

        one(0)  # warm-up
        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            for seconds, ok in pool.map(one, range(n)):
                latencies.append(seconds)
                errors += not ok
        return time.perf_counter() - started, latencies, errors


def in_process(args: argparse.Namespace, paths: list[Path], n: int) -> float:
    """Images/s of `nipad predict`'s inference loop (file reading included, outputs not written) on n images."""
    import torch

    from nipad.engine.calibration import Calibration
    from nipad.families import load_run
    from nipad.engine.predict import ImageInput, predict

    torch.set_num_threads(args.threads)
    model, _ = load_run(args.run, "cpu")
    calibration = Calibration.load(args.run)
    inputs = [ImageInput(paths[i % len(paths)], Path(f"{i}.png")) for i in range(n)]
    list(predict(model, calibration, inputs[:args.max_batch], "cpu", args.max_batch))  # warm-up
    started = time.perf_counter()
    done = sum(1 for _ in predict(model, calibration, inputs, "cpu", args.max_batch))
    return done / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=DEFAULT_RUN)
    parser.add_argument("--images", type=Path, default=next((p for p in DEFAULT_IMAGES if p.is_dir()), None))
    parser.add_argument("--requests", type=int, default=160)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    args = parser.parse_args()
    if args.images is None or not args.images.is_dir():
        raise SystemExit("no image folder: pass --images DIR")
    paths = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp"}
                   and "ground_truth" not in p.parts and "test" in p.parts)[:64]
    if not paths:
        raise SystemExit(f"no test images under {args.images}")
    files = [(p.name, p.read_bytes()) for p in paths]
    with tempfile.TemporaryDirectory(prefix="nipad-serve-load-") as tmp:
        args.run = calibrated(args.run, args.images, Path(tmp), args.threads)
        port = free_port()
        with open(Path(tmp) / "server.log", "w") as log:
            proc = start_server(args, port, log)
            try:
                wall, latencies, errors = load(f"http://127.0.0.1:{port}/predict", files, args.requests,
                                               args.concurrency)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        local_rate = in_process(args, paths, args.requests)
    serve_rate = args.requests / wall
    p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
    print(f"{args.run.name}: {args.requests} requests of 1 image ({len(paths)} distinct), concurrency "
          f"{args.concurrency}, --threads {args.threads}, max batch {args.max_batch}, max wait {args.max_wait_ms} ms")
    print(f"service    : {serve_rate:6.2f} images/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   errors {errors}")
    print(f"in-process : {local_rate:6.2f} images/s   (nipad predict's loop, batch {args.max_batch})")
    print(f"service / in-process throughput: {serve_rate / local_rate:.2f}")


if __name__ == "__main__":
    main()
