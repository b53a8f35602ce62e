"""`nipad predict RUN_DIR PATH... --out DIR`: scores, labels and heatmaps of image files for an inspection engineer."""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm import tqdm

from nipad.data import IMAGE_EXTENSIONS
from nipad.engine.calibration import Calibration
from nipad.engine.distributed import pick_device
from nipad.engine.families import load_run
from nipad.engine.predict import (
    Skipped,
    find_images,
    predict,
    save_outputs,
    write_table,
)
from nipad.errors import DataError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="predict on image files: predictions.csv/.jsonl and a heatmap PNG per image")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="image files, folders (searched recursively) or glob patterns (quote them: 'lot7/**/*.png')")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--save-maps", action="store_true", help="also write each raw anomaly map as .npy (image size)")
    p.add_argument("--colormap", default="jet", help="matplotlib colormap of the heatmaps (default: jet)")
    p.add_argument("--alpha", type=float, default=0.4, help="heatmap opacity over the image (default: 0.4)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    inputs = find_images(args.paths, exclude=out)
    if not inputs:
        raise DataError(f"no input image found in {' '.join(args.paths)}. Fix: give image files "
                        f"({', '.join(sorted(IMAGE_EXTENSIONS))}), folders that hold them, or glob patterns")
    device = pick_device(args.device)
    model, _ = load_run(args.run_dir, device)
    calibration = Calibration.load(args.run_dir)
    rows, skipped = [], []
    with tqdm(total=len(inputs), desc="predicting", unit="img", leave=False, dynamic_ncols=True) as bar:
        for record in predict(model, calibration, inputs, device, args.batch_size):
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
    print(f"nipad: predicted {len(rows)} image(s): {anomalous} anomalous, {len(rows) - anomalous} normal; "
          f"skipped {len(skipped)} unreadable")
    for item in skipped[:20]:
        print(f"  skipped {item.path}: {item.reason}")
    print(f"nipad: wrote {csv_path}, {jsonl_path} and heatmaps in {out / 'heatmaps'}")
    return 0
