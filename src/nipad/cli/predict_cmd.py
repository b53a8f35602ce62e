"""`nipad predict RUN_DIR PATH... --out DIR`: scores, labels and heatmaps of image files for an inspection engineer.

`nipad predict --onnx model.onnx PATH... --out DIR` does the same with a model from `nipad export`, run by
onnxruntime (classes and thresholds from its sidecar JSON), without a run directory.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nipad.cli.common import add_threshold_arg
from nipad.data import IMAGE_EXTENSIONS
from nipad.data.image_io import MAX_PIXELS
from nipad.errors import ConfigError, DataError
from nipad.utils.io import make_dir

if TYPE_CHECKING:
    import torch

    from nipad.engine.calibration import Calibration


SHOWN = 20  # images whose verdict is printed one per line


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict on image files: predictions.csv/.jsonl and a heatmap PNG per image")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the trained run (left out with --onnx)")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="image files, folders (searched recursively) or glob patterns (quote them: 'lot7/**/*.png')")
    p.add_argument("--onnx", metavar="MODEL.onnx",
                   help="an exported model (`nipad export`, run by onnxruntime on CPU) instead of RUN_DIR")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--save-maps", action="store_true", help="also write each raw anomaly map as .npy (image size)")
    p.add_argument("--colormap", default="jet", help="matplotlib colormap of the heatmaps (default: jet)")
    p.add_argument("--alpha", type=float, default=0.4, help="heatmap opacity over the image (default: 0.4)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help=f"skip images whose header declares more than this many pixels (width x height), before "
                        f"decoding them (default {MAX_PIXELS}, as `nipad serve`)")
    add_threshold_arg(p)
    p.set_defaults(run=run)


def open_model(args: argparse.Namespace) -> tuple[Any, Calibration, torch.device | str]:
    """The PyTorch model of RUN_DIR, or the exported model of --onnx, with its calibration and device."""
    from nipad.engine.calibration import Calibration
    from nipad.engine.distributed import pick_device
    from nipad.families import load_run

    if not args.onnx:
        device = pick_device(args.device)
        model, info = load_run(args.run_dir, device)
        known = [*info.classes, *info.prompt_classes]
        return model, Calibration.load(args.run_dir).with_manual(args.threshold, known), device
    from nipad.export.onnx_runner import OnnxDetector

    onnx = OnnxDetector(args.onnx, thresholds=args.threshold)
    if onnx.calibration is None:
        raise ConfigError(f"{args.onnx} was exported without thresholds. Fix: calibrate the run (`nipad calibrate`) "
                          f"and export it again")
    return onnx, onnx.calibration, "cpu"


def run(args: argparse.Namespace) -> int:
    from PIL import Image

    from nipad.engine.image_inputs import find_images
    from nipad.engine.predict import Skipped, predict, save_outputs, write_table
    from nipad.utils.progress import progress

    out = Path(args.out)
    paths = [args.run_dir, *args.paths] if args.onnx else args.paths
    inputs = find_images(paths, exclude=out)
    if not inputs:
        raise DataError(f"no input image found in {' '.join(paths) or '(no PATH given)'}. Fix: give image files "
                        f"({', '.join(sorted(IMAGE_EXTENSIONS))}), folders that hold them, or glob patterns")
    if args.max_pixels < 1:
        raise ConfigError(f"--max-pixels must be at least 1, got {args.max_pixels}")
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, args.max_pixels)  # PIL's own limit: the backstop
    make_dir(out)  # an unwritable --out fails now, not after the model has run
    model, calibration, device = open_model(args)
    rows, skipped = [], []
    with progress(total=len(inputs), desc="predicting", unit="img") as bar:
        for record in predict(model, calibration, inputs, device, args.batch_size, args.max_pixels):
            if isinstance(record, Skipped):
                skipped.append(record)
            else:
                rows.append(save_outputs(record, out, args.save_maps, args.alpha, args.colormap))
            bar.update()
    if not rows:
        raise DataError(f"none of the {len(inputs)} input image(s) could be read (first: {skipped[0].path}: "
                        f"{skipped[0].reason})")
    csv_path, jsonl_path = write_table(rows, out)
    anomalous = sum(row["pred_label"] for row in rows)
    if args.threshold:
        print(f"nipad: image threshold set by hand: {', '.join(args.threshold)}")
    print(f"nipad: predicted {len(rows)} image(s): {anomalous} anomalous, {len(rows) - anomalous} normal; "
          f"skipped {len(skipped)} unreadable")
    for row in rows[:SHOWN]:  # a few images: the verdict of each on the terminal, not only in the files
        print(f"  {row['path']}: {'ANOMALOUS' if row['pred_label'] else 'normal'} (class {row['class']}, score "
              f"{row['pred_score']:.4g}, {row['pred_score_normalized']:.2f} where 0.5 is the threshold)")
    for item in skipped[:20]:
        print(f"  skipped {item.path}: {item.reason}")
    print(f"nipad: wrote {csv_path}, {jsonl_path} and heatmaps in {out / 'heatmaps'}")
    return 0
