"""Where OneNIP's CPU training time goes, in one run: backbone alone, the pseudo-anomaly pool (synthesis + backbone,
as training makes it) and the transformer's training step (cpu preset), in images/s, plus a profile of synthesis.

    .venv/bin/python benchmarks/train_speed.py --data ROOT [--data ROOT2] [--images 160] [--threads 2] [--json OUT]

Run it alone: other jobs on the 2 cores skew every figure. Compare the speeds as ratios of this one run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from nipad.cli.common import open_data
from nipad.data.torch_dataset import ImageDataset, collate_skip_bad
from nipad.engine.features import DecodedImages, SyntheticImages, synthetic_pool, texture_source
from nipad.engine.train_config import train_preset
from nipad.models.onenip.model_config import preset
from nipad.models.onenip.detector import Detector
from nipad.models.onenip.objective import Objective
from nipad.synth import PseudoAnomaly


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, metavar="ROOT")
    parser.add_argument("--images", type=int, default=160, help="training images measured (spread over the set)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train = open_data(args.data, None).train
    samples = [train[i] for i in np.linspace(0, len(train) - 1, min(args.images, len(train))).astype(int)]
    config, tcfg = preset("cpu", "onenip"), train_preset("cpu")
    detector = Detector(config)
    extractor, size = detector.extractor, config.image_size

    with torch.no_grad():  # warm-up, so the first timing does not pay for lazy initialisation
        extractor(torch.zeros(2, 3, size, size))
    started = time.perf_counter()
    with torch.no_grad():
        for batch in DataLoader(ImageDataset(samples, size), batch_size=16, collate_fn=collate_skip_bad):
            bank = extractor(batch["image"])
    backbone = rate(len(samples), time.perf_counter() - started)

    images = DecodedImages([s.image_path for s in samples], size)
    synthetic = SyntheticImages(images, PseudoAnomaly(texture_source(None, images)), tcfg.seed)
    started = time.perf_counter()
    pool_feats, pool_masks = synthetic_pool(extractor, synthetic, 1, torch.device("cpu"))
    pool = rate(len(samples), time.perf_counter() - started)

    profile = cProfile.Profile()
    synthetic.round = 1
    started = time.perf_counter()
    profile.enable()
    for i in range(len(synthetic)):
        synthetic[i]
    profile.disable()
    synthesis_only = rate(len(samples), time.perf_counter() - started)
    text = io.StringIO()
    pstats.Stats(profile, stream=text).sort_stats("cumulative").print_stats(r"nipad|PIL|scipy", 14)

    objective = Objective(detector.net).train()
    optimizer = torch.optim.AdamW(detector.net.parameters(), lr=tcfg.lr)
    b = tcfg.batch_size
    clean = pool_feats[:b].float()
    steps, started = 0, time.perf_counter()
    while steps < 6 or time.perf_counter() - started < 10:
        losses = objective(clean, clean.flip(0), pool_feats[:b].float(), pool_masks[:b])
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        steps += 1
    train_step = rate(steps * b, time.perf_counter() - started)

    figures = {"backbone_img_s": backbone, "pool_img_s": pool, "synthesis_only_img_s": synthesis_only,
               "train_step_img_s": train_step, "pool_to_backbone": round(pool / backbone, 2),
               "images": len(samples), "threads": args.threads, "data": args.data}
    print(json.dumps(figures, indent=2))
    print("\nsynthesis profile (cumulative):\n" + text.getvalue()[-4000:])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**figures, "synthesis_profile": text.getvalue()}, indent=2) + "\n")


if __name__ == "__main__":
    main()
