"""`nipad` command line: one sub-command per module under nipad.cli; errors a user can fix print without traceback."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from nipad import __version__
from nipad.cli import (
    calibrate_cmd,
    data_cmd,
    demo_cmd,
    export_cmd,
    predict_cmd,
    prompt_cmd,
    serve_cmd,
    test_cmd,
    train_cmd,
)
from nipad.cli.common import CommandParser
from nipad.errors import NipadError
from nipad.runs.file_names import CONFIG, TRAIN_STATE

COMMANDS = (demo_cmd, train_cmd, test_cmd, predict_cmd, calibrate_cmd, prompt_cmd, export_cmd, serve_cmd, data_cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nipad", description="Unified visual anomaly detection (OneNIP, UniAD).")
    parser.add_argument("--version", action="version", version=f"nipad {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=CommandParser)
    for module in COMMANDS:
        module.register(sub)
    return parser


EXTRAS = {"fastapi": "serve", "uvicorn": "serve", "multipart": "serve", "prometheus_client": "serve",
          "onnx": "export", "onnxruntime": "export", "diffusers": "anomalysd", "transformers": "anomalysd",
          "elpv_dataset": "demo"}
"""The optional packages' import names and the extra (pyproject.toml) that installs each."""


def missing_extra(err: ModuleNotFoundError) -> str | None:
    """What to install when `err` is an optional package nipad was installed without; None for anything else."""
    top = (err.name or "").split(".")[0]
    extra = EXTRAS.get(top)
    return None if extra is None else (f"this command needs the `{extra}` extra, which is not installed ({top} is "
                                       f"missing). Fix: pip install 'nipad[{extra}]'")


def _short_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                   line: str | None = None) -> str:
    return f"nipad: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.formatwarning = _short_warning
    try:
        return int(args.run(args) or 0)
    except NipadError as err:
        print(f"nipad: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if (hint := missing_extra(err)) is None:
            raise
        print(f"nipad: error: {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nipad: interrupted; {_after_interrupt(args)}", file=sys.stderr)
        return 130


def _after_interrupt(args: argparse.Namespace) -> str:
    """What an interrupted command left behind, as the user needs to know it (files are written atomically)."""
    if args.command != "train":
        return "every file already written is complete (all are written atomically); rerun the command to finish"
    out = Path(args.out)
    if not (out / TRAIN_STATE).is_file():  # what a resumable training writes with each checkpoint
        return f"no checkpoint had been written to {out} yet (rerun the same command to start again)"
    try:
        epochs = int(json.loads((out / CONFIG).read_text(encoding="utf-8")).get("epochs_done", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        epochs = 0
    return (f"the last checkpoint{f' (epoch {epochs})' if epochs else ''} in {out} is intact (rerun the same command "
            f"to resume)")


if __name__ == "__main__":
    sys.exit(main())
