"""How the fusion constant c is measured, on one trained OneNIP run: c over the held-out normal training images alone
(nipad before this change) against c over them and a pseudo-anomalous copy of each (the trainer's now), each scored
on the validation set and the test split.

    .venv/bin/python benchmarks/fusion_constant.py RUN_DIR --data ROOT [--data ROOT2] [--threads 2]
"""

import argparse
import copy
from pathlib import Path

import torch

from map_fusion import open_run  # beside this file
from nipad.engine.evaluate import run_test
from nipad.engine.features import feature_bank
from nipad.engine.trainer_finish import detector_outputs, half_range


def constant_over(detector, samples) -> float:
    """The trainer's c (`half_range`) over `samples`, from their float16 backbone features as in training."""
    device = torch.device("cpu")
    features = feature_bank(detector.extractor, samples, detector.config.image_size, device)
    return half_range(detector_outputs(detector, features, device, ("rec_map",))["rec_map"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("/tmp/nipad-fusion-validation"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data, detector, _, val = open_run(args.run, args.data, args.out)
    constants = {"normal images": constant_over(detector, [s for s in val if s.label == 0]),
                 "normal + pseudo anomalies": constant_over(detector, val)}
    for name, c in constants.items():
        scored = copy.deepcopy(detector)
        scored.fusion_scale.fill_(c)
        for label, samples in (("validation", val), ("test", data.test)):
            with torch.inference_mode():
                results, _ = run_test(scored, samples)
            print(f"c over {name} = {c:.2f}, {label}: " + " ".join(
                f"{k} {100 * v:.1f}" for k, v in results.mean.items() if v is not None), flush=True)


if __name__ == "__main__":
    main()
