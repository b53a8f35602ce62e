"""OneNIP's CPU training step (cpu preset) under the speed-ups PyTorch offers, in one run, with their effect on the loss.

    .venv/bin/python benchmarks/train_step_variants.py [--threads 2] [--steps 12] [--batch 8] [--variants fp32,bf16,...] [--json OUT]

Variants: `fp32` (what training does), `bf16` (torch.autocast bfloat16), `channels_last` (the refiner's convolutions
on NHWC tensors), `compile` (torch.compile of the loss module, compile time reported apart). Every variant starts
from the same weights and batches; `loss_rel_diff` is the largest relative difference of its per-step losses from
fp32's. Attention already runs through scaled_dot_product_attention: nn.MultiheadAttention calls it when no
weights are returned, with the neighbour mask as its boolean mask. Run it alone and compare the speeds as ratios.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from contextlib import nullcontext
from pathlib import Path

import torch

from nipad.engine.train_config import train_preset
from nipad.models.onenip.model_config import preset
from nipad.models.onenip.detector import Detector
from nipad.models.onenip.objective import Objective
from nipad.models.onenip.network import ReconstructionNet

VARIANTS = ("fp32", "bf16", "channels_last", "compile")


def batches(config, channels: int, batch: int, count: int) -> list[tuple]:
    """Fixed random feature batches (clean, prompt, synthetic, mask): speed does not depend on the values."""
    g = torch.Generator().manual_seed(0)
    s, size = config.feature_size, config.image_size
    out = []
    for _ in range(count):
        clean = torch.rand(batch, channels, s, s, generator=g)
        synthetic = clean + (torch.rand(batch, 1, s, s, generator=g) > 0.9) * torch.rand(batch, channels, s, s, generator=g)
        mask = (torch.rand(batch, 1, size, size, generator=g) > 0.95).float()
        out.append((clean, clean.flip(0), synthetic, mask))
    return out


def run(variant: str, net: ReconstructionNet, data: list[tuple], lr: float) -> dict:
    net = copy.deepcopy(net).train()
    objective = Objective(net)
    if variant == "channels_last":
        net.refiner.to(memory_format=torch.channels_last)
    step_fn = torch.compile(objective) if variant == "compile" else objective
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if variant == "bf16" else nullcontext()
    losses, times = [], []
    torch.manual_seed(1)
    for clean, prompt, synthetic, mask in data:
        if variant == "channels_last":
            clean, prompt, synthetic = (t.contiguous(memory_format=torch.channels_last) for t in (clean, prompt, synthetic))
        started = time.perf_counter()
        with autocast:
            out = step_fn(clean, prompt, synthetic, mask)
        optimizer.zero_grad(set_to_none=True)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 0.1)
        optimizer.step()
        times.append(time.perf_counter() - started)
        losses.append(float(out["loss"].detach()))
    warm = times[2:]  # the first steps pay for allocation (and compilation)
    batch = data[0][0].shape[0]
    return {"img_s": round(batch * len(warm) / sum(warm), 2), "first_step_s": round(times[0], 2), "losses": losses}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--batch", type=int, help="images per step (default: the cpu preset's)")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config, tcfg = preset("cpu", "onenip"), train_preset("cpu")
    torch.manual_seed(0)
    net = Detector(config).net
    batch = args.batch or tcfg.batch_size
    data = batches(config, net.input_proj.in_features, batch, args.steps)
    results = {v: run(v, net, data, tcfg.lr) for v in args.variants.split(",")}
    base = results.get("fp32")
    for r in results.values():
        if base:
            r["speed_vs_fp32"] = round(r["img_s"] / base["img_s"], 2)
            r["loss_rel_diff"] = round(max(abs(a - b) / abs(b) for a, b in zip(r["losses"], base["losses"])), 4)
        r["losses"] = [round(x, 5) for x in r["losses"]]
    figures = {"threads": args.threads, "steps": args.steps, "batch": batch, "variants": results}
    print(json.dumps({v: {k: x for k, x in r.items() if k != "losses"} for v, r in results.items()}, indent=2))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
