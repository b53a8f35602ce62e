"""How well does a class the model never saw work after `nipad prompt add`? (ELPV: train on one cell type, add the
other by prompts, test both; compare with a model trained on both types.)

    .venv/bin/python benchmarks/new_class_prompt.py [--train-per-class 80] [--epochs 40] [--prompt-images 40]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from nipad.data.elpv import read_elpv
from nipad.runs.checkpoint import load_detector
from nipad.engine.distributed import Context
from nipad.engine.evaluate import run_test
from nipad.engine.prompts import add_prompts
from nipad.engine.train_config import train_preset
from nipad.engine.trainer import Trainer
from nipad.metrics import format_table
from nipad.models.onenip.model_config import preset


def train_and_test(train, test, run_dir: Path, epochs: int, added=None):
    Trainer(preset("cpu"), train_preset("cpu", epochs=epochs), run_dir, Context(0, 1, torch.device("cpu")),
            overwrite=True).fit(train, ["elpv"])
    if added:
        add_prompts(run_dir, added[0], added[1])
    detector, _ = load_detector(run_dir)
    with torch.inference_mode():
        return run_test(detector, test)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train-per-class", type=int, default=80)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--prompt-images", type=int, default=40)
    parser.add_argument("--held-out", default="poly")
    args = parser.parse_args()
    torch.set_num_threads(2)
    data = read_elpv(n_train=args.train_per_class, n_test=40)
    seen = [s for s in data.train if s.class_name != args.held_out]
    new_normals = [s.image_path for s in data.train if s.class_name == args.held_out][:args.prompt_images]
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, train, added in [("trained on both", data.train, None),
                                   (f"{args.held_out} added by prompts", seen, (args.held_out, new_normals))]:
            started = time.time()
            results = train_and_test(train, data.test, Path(tmp) / name.replace(" ", "_"), args.epochs, added)
            print(f"\n== {name} ({time.time() - started:.0f} s)\n{format_table(results)}", flush=True)
            report[name] = results.per_class
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
