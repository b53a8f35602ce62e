"""Cost of a finer token grid: the cpu preset's OneNIP training step (bf16 autocast, batch 8 clean + 8 pseudo
anomalies, one prompt each) on random neck features at 14x14 tokens (224 px) and 28x28 (448 px, the token count a
stride-8 grid at 224 px would give).

    .venv/bin/python benchmarks/token_grid_cost.py [--threads 2] [--steps 4]

Prints seconds per step (the first, warm-up, step is left out) and the ratio to 14x14. Run it alone on the machine.
"""

import argparse
import statistics
import time

import torch

from nipad.models.backbone import create_backbone
from nipad.models.onenip.model_config import preset
from nipad.models.onenip.objective import Objective
from nipad.models.onenip.network import ReconstructionNet


def step_seconds(image_size: int, steps: int, batch: int = 8) -> float:
    """Median seconds of a forward + backward + AdamW step after one warm-up step."""
    config = preset("cpu", image_size=image_size)
    channels = sum(create_backbone(config.backbone).channels)  # the neck concatenates the four levels
    net = ReconstructionNet(config, channels)
    objective, optimizer = Objective(net), torch.optim.AdamW(net.parameters(), 1e-4)
    side = config.feature_size
    clean, synthetic, prompt = (torch.randn(batch, channels, side, side) for _ in range(3))
    mask = (torch.rand(batch, 1, image_size, image_size) > 0.9).float()
    times = []
    for _ in range(steps + 1):
        started = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = objective(clean, prompt, synthetic, mask)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - started)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    base = None
    for image_size in (224, 448):
        seconds = step_seconds(image_size, args.steps)
        base = base or seconds
        side = image_size // 16
        print(f"{side}x{side} tokens ({image_size} px): {seconds:.2f} s per step, {seconds / base:.1f}x", flush=True)


if __name__ == "__main__":
    main()
