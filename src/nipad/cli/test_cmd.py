"""`nipad test RUN_DIR --data ROOT`: the metric protocol per class, printed and written as results JSON."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from nipad.cli.common import add_data_args, add_threshold_arg, open_data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test", help="evaluate a trained run on the test split of the given data sets")
    p.add_argument("run_dir", metavar="RUN_DIR")
    add_data_args(p)
    p.add_argument("--json", metavar="PATH",
                   help="results JSON (default: RUN_DIR/metrics.json); report.html goes in the same folder")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device")
    add_threshold_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from nipad.engine.distributed import pick_device
    from nipad.engine.evaluate import format_operating_points, operating_points, run_test
    from nipad.engine.families import load_run
    from nipad.metrics import format_table
    from nipad.report import write_report

    device = pick_device(args.device)
    detector, info = load_run(args.run_dir, device)
    dataset = open_data(args.data, args.classes)
    with torch.inference_mode():
        results, outputs = run_test(detector, dataset.test, args.batch_size,
                                    meta={"run_dir": str(args.run_dir), "data": ", ".join(args.data)})
    print(format_table(results))
    calibration = _calibration(args, info)
    if calibration is None:
        print(f"nipad: {args.run_dir} has no calibration.json, so no operating threshold to report. Fix: `nipad "
              f"calibrate {args.run_dir} --data ROOT`")
    else:
        results = replace(results, operating_point=operating_points(outputs, calibration))
        print(format_operating_points(results.operating_point))
    if outputs.skipped:
        print(f"nipad: skipped {len(outputs.skipped)} unreadable test image(s):")
        for path, reason in outputs.skipped[:20]:
            print(f"  {path}: {reason}")
    out = Path(args.json) if args.json else Path(args.run_dir) / "metrics.json"
    results.to_json(out)
    print(f"nipad: results written to {out}")
    print(f"nipad: report written to {write_report(results, outputs, out.parent / 'report.html')}")
    return 0


def _calibration(args: argparse.Namespace, info: Any) -> Any:
    """The run's Calibration with any --threshold applied; None when the run has none (and none is given)."""
    from nipad.engine.calibration import FILE as CALIBRATION
    from nipad.engine.calibration import Calibration
    from nipad.errors import ConfigError

    if not (Path(args.run_dir) / CALIBRATION).is_file():
        if args.threshold:
            raise ConfigError(f"{args.run_dir} has no calibration.json for --threshold to override. Fix: `nipad "
                              f"calibrate {args.run_dir} --data ROOT` first")
        return None
    return Calibration.load(args.run_dir).with_manual(args.threshold, [*info.classes, *info.prompt_classes])
