"""The demo's data (ELPV solar cells, mono + poly, 80 normal training cells each, 40 + 40 test cells each): OneNIP
trained as `nipad demo` trains it, against the kNN and PatchCore baselines on the same cells.

    .venv/bin/python benchmarks/elpv_demo.py [--epochs 20] [--seed 133] [--neck pooled|mfcn] [--threads 2] [--json OUT]

Prints image AUROC / AP per class and their mean (ELPV has image labels only), with each method's train seconds,
and writes them to --json (default benchmarks/figures/elpv_demo.json).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from nipad.cli.demo_cmd import DEMO_EPOCHS, demo_training
from nipad.data.elpv import read_elpv
from nipad.engine.baselines import fit_baseline
from nipad.engine.distributed import Context
from nipad.engine.evaluate import run_test
from nipad.engine.trainer import Trainer
from nipad.models.baselines.knn import KnnConfig
from nipad.models.baselines.patchcore import PatchCoreConfig
from nipad.models.neck import NECKS
from nipad.models.onenip.model_config import preset
from nipad.runs.checkpoint import load_detector
from nipad.runs.split import split_calibration

HERE = Path(__file__).parent
METRICS = ("image_auroc", "image_ap")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help="OneNIP epochs (the demo's)")
    parser.add_argument("--seed", type=int, default=133)
    parser.add_argument("--neck", choices=NECKS, help="OneNIP's neck (default: the preset's)")
    parser.add_argument("--preset", default="nipad", help="OneNIP's preset (default nipad, the demo's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default=str(HERE / "figures" / "elpv_demo.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = read_elpv(n_train=80, n_test=40)
    train, _ = split_calibration(data.train, 0.1, args.seed)  # the baselines fit what OneNIP trains on
    report = {}
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("onenip", "knn", "patchcore"):
            started = time.time()
            if method == "onenip":
                run_dir = Path(tmp) / "run"
                Trainer(preset(args.preset, neck=args.neck), demo_training(args.epochs, args.seed),
                        run_dir, Context(0, 1, torch.device("cpu")), overwrite=True, log=lambda *a: None
                        ).fit(data.train, ["elpv"])
                model, _ = load_detector(run_dir)
            else:
                config = (KnnConfig if method == "knn" else PatchCoreConfig)(seed=args.seed)
                model = fit_baseline(config, train, torch.device("cpu"), log=lambda *a: None)
            train_seconds = time.time() - started
            with torch.inference_mode():
                results, _ = run_test(model, data.test)
            report[method] = {"train_seconds": round(train_seconds, 1),
                              "mean": {m: results.mean[m] for m in METRICS},
                              "per_class": {c: {m: v[m] for m in METRICS} for c, v in results.per_class.items()}}
            print(f"{method:10s} train {train_seconds:5.0f} s  " + "  ".join(
                f"{c} AUROC {100 * v['image_auroc']:.1f} AP {100 * v['image_ap']:.1f}"
                for c, v in {**report[method]["per_class"], "mean": report[method]["mean"]}.items()), flush=True)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    summary = {"epochs": args.epochs, "seed": args.seed, "preset": args.preset, "neck": args.neck or "preset's",
               "methods": report}
    Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
