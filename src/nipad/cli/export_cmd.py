"""`nipad export RUN_DIR --format onnx --out model.onnx`: one graph for deployment, checked against PyTorch."""

from __future__ import annotations

import argparse

from nipad.export import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, check_opset


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a trained run for deployment (ONNX graph + JSON sidecar)")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", choices=("onnx",), default="onnx")
    p.add_argument("--out", required=True, metavar="PATH", help="the .onnx file (its sidecar .json goes next to it)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default "
                   f"{DEFAULT_OPSET})")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from nipad.errors import ConfigError
    from nipad.export.onnx_export import ANOMALYSD_REFUSAL, export_onnx
    from nipad.families import load_run
    from nipad.models.anomalysd.config import MODEL as ANOMALYSD
    from nipad.runs.run_info import read_family

    check_opset(args.opset)  # before the model loads
    if read_family(args.run_dir) == ANOMALYSD:  # refused before its multi-GB model loads
        raise ConfigError(ANOMALYSD_REFUSAL)
    model, _ = load_run(args.run_dir, "cpu")
    report = export_onnx(model, args.out, run_dir=args.run_dir, opset=args.opset)
    print(f"nipad: wrote {report.onnx_path} and {report.sidecar_path}; onnxruntime vs PyTorch on 2 images: max "
          f"|score diff| {report.max_score_diff:.2e} (scores up to {report.max_score:.3g}), max |map diff| "
          f"{report.max_map_diff:.2e}, prompts {'agree' if report.same_prompts else 'DIFFER'}")
    return 0
