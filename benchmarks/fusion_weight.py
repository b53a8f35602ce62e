"""The fusion weight w of a trained OneNIP run (anomaly map = (1 - w) x reconstruction map + w x c x refiner map),
scored for several w on the validation set (held-out normal training images + pseudo anomalies: what w is chosen on)
and on the test split. The model runs once per set; each w only reweights its two maps.

    .venv/bin/python benchmarks/fusion_weight.py RUN_DIR --data ROOT [--data ROOT2] [--weights 0.5,0.85,1] [--json OUT]
    .venv/bin/python benchmarks/fusion_weight.py RUNS/DEMO --elpv          # a `nipad demo` run, on its ELPV cells
"""

import argparse
import json
from pathlib import Path

import torch

from nipad.cli.common import open_data
from nipad.data.elpv import read_elpv
from nipad.runs.checkpoint import load_detector, read_info
from nipad.engine.evaluate import Outputs, score
from nipad.runs.split import split_calibration
from nipad.engine.validation import pseudo_validation_set
from nipad.models.onenip.detector import image_score

from map_fusion import collect  # beside this file


def weighted(maps: dict, w: float, c: float, pool: int) -> Outputs:
    """The test outputs the detector gives at fusion weight w."""
    fused = (1 - w) * maps["rec_map"] + w * c * maps["ref_map"]
    scores = image_score(fused, pool)
    out = Outputs()
    for i, (name, label, mask, path) in enumerate(maps["meta"]):
        out.add(name, float(scores[i]), label, fused[i, 0].numpy(), mask, path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", action="append")
    parser.add_argument("--elpv", action="store_true", help="the run is a `nipad demo` run: score its ELPV cells")
    parser.add_argument("--weights", default="0.5,0.85,1")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--validation-dir", type=Path, default=Path("/tmp/nipad-fusion-validation"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if bool(args.data) == args.elpv:
        parser.error("give --data ROOT ... or --elpv")
    data = read_elpv(n_train=80, n_test=40) if args.elpv else open_data(args.data, None)
    detector, _ = load_detector(args.run)
    train_cfg = read_info(args.run).train
    train, held = split_calibration(data.train, train_cfg["calibration_fraction"], train_cfg["seed"])
    size, c = detector.config.image_size, float(detector.fusion_scale)
    val = pseudo_validation_set(held, train, size, args.validation_dir / ("elpv" if args.elpv else "data"))
    sets = {"validation": (val, collect(detector, val)), "test": (data.test, collect(detector, data.test))}
    report = {"run": str(args.run), "c": c, "trained_fusion_weight": detector.config.fusion_weight, "rows": []}
    for w in (float(x) for x in args.weights.split(",")):
        for label, (samples, maps) in sets.items():
            results = score(weighted(maps, w, c, detector.config.score_pool), samples, size)
            row = {"w": w, "set": label, "mean": results.mean,
                   "per_class": {k: v["image_auroc"] for k, v in results.per_class.items()}}
            report["rows"].append(row)
            print(f"w {w:.2f} {label:10s} " + " ".join(f"{k} {100 * v:.1f}" for k, v in results.mean.items()
                                                      if v is not None)
                  + " | image AUROC " + " ".join(f"{k} {100 * v:.1f}" for k, v in row["per_class"].items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
