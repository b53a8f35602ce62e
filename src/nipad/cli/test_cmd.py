"""`nipad test RUN_DIR --data ROOT`: the metric protocol per class, printed and written as results JSON."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from nipad.cli.common import add_data_args, add_threshold_arg, open_data
from nipad.runs.file_names import METRICS, REPORT


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test", help="evaluate a trained run on the test split of the given data sets")
    p.add_argument("run_dir", metavar="RUN_DIR")
    add_data_args(p)
    p.add_argument("--json", metavar="PATH",
                   help="results JSON (default: RUN_DIR/metrics.json); report.html goes in the same folder")
    p.add_argument("--overwrite-metrics", action="store_true",
                   help="write RUN_DIR/metrics.json and report.html even when the data holds classes the run was "
                        "not trained on (by default their results are only printed, or written to --json PATH)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    add_threshold_arg(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from nipad.engine.distributed import pick_device
    from nipad.engine.evaluate import format_operating_points, operating_points, run_test
    from nipad.errors import ConfigError
    from nipad.families import load_run
    from nipad.metrics import format_table
    from nipad.report import write_report

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    device = pick_device(args.device)
    detector, info = load_run(args.run_dir, device)
    dataset = open_data(args.data, args.classes)
    calibration = _calibration(args, info)
    unseen = _unseen_classes(args, info, calibration, dataset.test)
    meta = {"run_dir": str(args.run_dir), "data": ", ".join(args.data),
            **({"unseen_classes": unseen} if unseen else {})}
    with torch.inference_mode():
        results, outputs = run_test(detector, dataset.test, args.batch_size, meta=meta)
    print(format_table(results))
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
    out = Path(args.json) if args.json else Path(args.run_dir) / METRICS
    if unseen and not args.json and not args.overwrite_metrics:
        print(f"nipad: results not written to {out} (nor report.html), which are for the classes the run was "
              f"trained on. Fix: --json PATH to save these results elsewhere, or --overwrite-metrics to write them "
              f"there")
        return 0
    results.to_json(out)
    print(f"nipad: results written to {out}")
    print(f"nipad: report written to {write_report(results, outputs, out.parent / REPORT)}")
    return 0


def _unseen_classes(args: argparse.Namespace, info: Any, calibration: Any, samples: Any) -> list[str]:
    """The test classes the run was not trained on (nor given prompts or thresholds for), warned about: its
    scores for them are not on the scale of its own classes'."""
    import warnings

    from nipad.engine.calibration import ALL

    known = set(info.classes) | set(info.prompt_classes)
    if calibration is not None:
        known |= set(calibration.classes) - {ALL}
    unseen = sorted({s.class_name for s in samples} - known)
    if unseen:
        names, them = ", ".join(unseen), "them" if len(unseen) > 1 else "it"
        pooled = ", and they are judged at the pooled threshold" if calibration is not None else ""
        warnings.warn(f"the run in {args.run_dir} was not trained on {names}; its scores for {them} are not "
                      f"comparable to those of its own classes ({', '.join(sorted(known)) or 'none'}){pooled}. Fix: "
                      f"test {them} with a run trained on {them} (or, for OneNIP, add {them} with `nipad prompt add`), "
                      f"or keep to the run's classes with --classes", stacklevel=2)
    return unseen


def _calibration(args: argparse.Namespace, info: Any) -> Any:
    """The run's Calibration with any --threshold applied; None when the run has none (and none is given)."""
    from nipad.engine.calibration import Calibration
    from nipad.errors import ConfigError
    from nipad.runs.file_names import CALIBRATION

    if not (Path(args.run_dir) / CALIBRATION).is_file():
        if args.threshold:
            raise ConfigError(f"{args.run_dir} has no calibration.json for --threshold to override. Fix: `nipad "
                              f"calibrate {args.run_dir} --data ROOT` first")
        return None
    return Calibration.load(args.run_dir).with_manual(args.threshold, [*info.classes, *info.prompt_classes])
