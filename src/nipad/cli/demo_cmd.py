"""`nipad demo`: the first thing a newcomer runs. One OneNIP model for two kinds of solar cells (ELPV data set,
installed from PyPI), trained with nipad's default (`nipad` preset) on a subset, then tested on held-out cells."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from nipad.runs.file_names import METRICS, REPORT

if TYPE_CHECKING:
    from nipad.engine.train_config import TrainConfig


DEMO_LR = 1e-3
DEMO_EPOCHS = 20  # 360 steps: the image score (token matching) as after 30 epochs, and the demo within 5 minutes
"""The demo trains at lr 1e-3 without the cpu preset's warmup: 1e-3 was chosen over 4e-4 on the pseudo-anomaly
validation set of its training cells (image AUROC 100 vs 99.2, pixel AP 66.9 vs 64.3 at 40 epochs), measured without
a warmup, and its refiner learned; the trainer warns if it ever does not."""


def demo_training(epochs: int, seed: int | None = None) -> TrainConfig:
    """The demo's training settings (also what benchmarks/elpv_demo.py measures)."""
    from nipad.engine.train_config import train_preset

    return train_preset("nipad", epochs=epochs, lr=DEMO_LR, warmup_steps=0, seed=seed)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="train and test one unified model on solar-cell images (a few minutes on a CPU)")
    p.add_argument("--out", default="runs/demo", metavar="RUN_DIR", help="where the run goes (default runs/demo)")
    p.add_argument("--train-per-class", type=int, default=80)
    p.add_argument("--test-per-class", type=int, default=40, help="normal and as many anomalous cells per class")
    p.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help=f"training epochs (default {DEMO_EPOCHS}, "
                   "of 18 steps each)")
    p.add_argument("--heatmaps", type=int, default=4, help="normal and as many anomalous test cells to draw, "
                   "shared among the classes")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from nipad.data.elpv import read_elpv
    from nipad.engine import distributed
    from nipad.engine.calibration import Calibration
    from nipad.engine.evaluate import run_test
    from nipad.engine.predict import ImageInput, Prediction, predict, save_outputs, write_table
    from nipad.engine.trainer import Trainer
    from nipad.metrics import format_table
    from nipad.models.onenip.model_config import preset
    from nipad.report import write_report
    from nipad.runs.checkpoint import load_detector

    started = time.time()
    ctx = distributed.setup()
    data = read_elpv(n_train=args.train_per_class, n_test=args.test_per_class)
    print("nipad demo: ELPV electroluminescence images of solar cells; mono- and polycrystalline cells are two\n"
          "product types served by ONE OneNIP model that learns from normal cells only. Data used:")
    print(data.describe())
    out = Path(args.out)
    print(f"\n[1/3] training OneNIP (nipad preset) into {out}: backbone features, pseudo anomalies, then the "
          "transformer")
    Trainer(preset("nipad"), demo_training(args.epochs), out, ctx, overwrite=True, preset="nipad").fit(data.train,
                                                                                                      ["elpv"])
    print("\n[2/3] testing on held-out cells (image labels only: the pixel metrics are not defined here)")
    detector, _ = load_detector(out, ctx.device)
    with torch.inference_mode():
        results, outputs = run_test(detector, data.test, meta={"run_dir": str(out), "data": "elpv"})
    print(format_table(results))
    results.to_json(out / METRICS)
    report = write_report(results, outputs, out / REPORT, title="nipad demo report")
    classes = sorted({s.class_name for s in data.test})
    per_class = max(1, args.heatmaps // len(classes))
    shown = [s for c in classes for anomalous in (False, True)
             for s in [t for t in data.test if t.class_name == c and bool(t.label) == anomalous][:per_class]]
    print(f"\n[3/3] heatmaps of {len(shown)} test cells (calibrated thresholds, defect outline in red)")
    inputs = [ImageInput(s.image_path, Path(s.class_name) / ("anomalous" if s.label else "normal") / s.image_path.name)
              for s in shown]
    rows = [save_outputs(p, out) for p in predict(detector, Calibration.load(out), inputs, ctx.device)
            if isinstance(p, Prediction)]
    csv_path, _ = write_table(rows, out)
    print(f"  {len(rows)} heatmaps in {out / 'heatmaps'}, predictions in {csv_path}")
    print(f"\nnipad demo: done in {time.time() - started:.0f} s; metrics in {out / METRICS}, report in {report}")
    return 0
