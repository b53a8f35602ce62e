"""`nipad calibrate RUN_DIR --data ROOT`: redo a run's thresholds on new NORMAL images (the data sets' train split)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nipad.cli.common import add_data_args, open_data
from nipad.errors import ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="set a run's thresholds again from normal images")
    p.add_argument("run_dir", metavar="RUN_DIR")
    add_data_args(p)
    p.add_argument("--false-alarm-rate", type=float, help="target false alarm rate (default: the run's)")
    p.add_argument("--device")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from nipad.engine.calibration import ALL, Calibration, calibrate
    from nipad.engine.calibration import FILE as CALIBRATION
    from nipad.engine.distributed import pick_device
    from nipad.engine.families import load_run

    model, info = load_run(args.run_dir, pick_device(args.device))
    has_old = (Path(args.run_dir) / CALIBRATION).is_file()  # a run without normal images (0-shot) has none yet
    old = Calibration.load(args.run_dir) if has_old else None
    samples = open_data(args.data, args.classes).train
    known = set(info.classes) | set(info.prompt_classes) | (set(old.classes) - {ALL} if old else set())
    unknown = sorted({s.class_name for s in samples} - known)
    if unknown:
        raise ConfigError(f"the run in {args.run_dir} has no class {', '.join(unknown)} (it has {', '.join(sorted(known))})"
                          f", so thresholds for it would never be used. Fix: pick its classes with --classes, or add a "
                          f"new class first with `nipad prompt add`")
    rate = args.false_alarm_rate or (old.rate if old else 0.01)
    with torch.inference_mode():
        new = calibrate(model, samples, rate, f"{len(samples)} normal images of {', '.join(args.data)}")
    (old.merged(new) if old else new).save(args.run_dir)
    for name, t in sorted(new.classes.items()):
        print(f"  {name}: image threshold {t.image_threshold:.4g}, pixel threshold {t.pixel_threshold:.4g} "
              f"({t.n_images} images)")
    print(f"nipad: thresholds for a {100 * rate:g}% false alarm rate written to {args.run_dir}/calibration.json")
    return 0
