"""OneNIP vs UniAD (cpu preset) vs a kNN feature-distance baseline on the same backbone, on magnetic_tile.

    .venv/bin/python benchmarks/magnetic_tile.py [--data ../shared/datasets/magnetic_tile] [--epochs N]
        [--models onenip,uniad,knn] [--neck mfcn|pooled] [--seed 133]

Prints the seven metrics and the wall time of each, and writes benchmarks/results/magnetic_tile.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from nipad.data import ImageDataset, collate_skip_bad, open_dataset
from nipad.runs.checkpoint import load_detector
from nipad.engine.distributed import Context
from nipad.engine.evaluate import Outputs, run_test, score
from nipad.engine.train_config import train_preset
from nipad.engine.trainer import Trainer
from nipad.runs.split import split_calibration
from nipad.engine.features import feature_bank
from nipad.metrics import auroc, format_table
from nipad.models.onenip.model_config import preset
from nipad.models.onenip.detector import Detector, image_score, upsample
from nipad.models.neck import NECKS

HERE = Path(__file__).parent


@torch.no_grad()
def knn_baseline(data, image_size: int, bank_size: int = 16384, seed: int = 0):
    """Patch-level 1-NN distance to a random subset of the training patches' neck features (PatchCore without
    coreset or neighbourhood pooling): anomaly map = distance upsampled, image score = max of the pooled map."""
    detector = Detector(preset("cpu", "uniad", neck="mfcn"))
    train, _ = split_calibration(data.train, 0.1, 133)
    bank = feature_bank(detector.extractor, train, image_size, torch.device("cpu")).float()
    patches = bank.permute(0, 2, 3, 1).reshape(-1, bank.shape[1])
    g = torch.Generator().manual_seed(seed)
    patches = patches[torch.randperm(len(patches), generator=g)[:bank_size]]
    out = Outputs()
    loader = DataLoader(ImageDataset(data.test, image_size), batch_size=8, collate_fn=collate_skip_bad)
    for batch in loader:
        feats = detector.features(batch["image"])
        b, c, h, w = feats.shape
        d = torch.cdist(feats.permute(0, 2, 3, 1).reshape(-1, c), patches).min(dim=1).values.reshape(b, 1, h, w)
        maps = upsample(d, image_size)
        scores = image_score(maps, 16)
        for j, name in enumerate(batch["class_name"]):
            out.add(name, float(scores[j]), int(batch["label"][j]), maps[j, 0].numpy(),
                    batch["mask"][j, 0].numpy() > 0.5, batch["path"][j])
    return score(out, data.test, image_size, {"model": "knn"}), out


def pixel_auroc_by_defect(outputs: Outputs, samples) -> dict[str, float]:
    """Pixel AUROC of each defect type's images together with all normal test images, and each type's share of
    the defect pixels: the pixel metrics rest mostly on the types with large masks."""
    kind = {str(s.image_path): s.defect_type for s in samples}
    types = np.array([kind[p] for name in outputs.paths for p in outputs.paths[name]])
    maps = np.stack([m for name in outputs.paths for m in outputs.maps[name]])
    masks = np.stack([m for name in outputs.paths for m in outputs.masks[name]])
    normal = types == "good"
    total = masks.sum()
    return {t: (auroc(maps[normal | (types == t)], masks[normal | (types == t)]), masks[types == t].sum() / total)
            for t in sorted(set(types) - {"good"})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "datasets" / "magnetic_tile"))
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--models", default="onenip,uniad,knn")
    parser.add_argument("--neck", choices=NECKS, help="OneNIP/UniAD neck (default: the cpu preset's)")
    parser.add_argument("--seed", type=int, default=133, help="OneNIP/UniAD training seed")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (1 when another job shares the cores)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = open_dataset(args.data)
    out = Path(args.out)
    report = {}
    for model in args.models.split(","):
        started = time.time()
        if model == "knn":
            results, outputs = knn_baseline(data, 224)
        else:
            run_dir = out / f"magnetic_tile-{model}"
            Trainer(preset("cpu", model, neck=args.neck), train_preset("cpu", epochs=args.epochs, seed=args.seed),
                    run_dir, Context(0, 1, torch.device("cpu")), overwrite=True).fit(data.train, [args.data])
            detector, _ = load_detector(run_dir)
            with torch.inference_mode():
                results, outputs = run_test(detector, data.test)
        wall = time.time() - started
        by_defect = pixel_auroc_by_defect(outputs, data.test)
        print(f"\n== {model}: {wall:.0f} s (train + test)\n{format_table(results)}\npixel AUROC by defect type "
              "(share of defect pixels): " + ", ".join(f"{t} {100 * a:.1f} ({100 * w:.0f}%)"
                                                       for t, (a, w) in by_defect.items()), flush=True)
        report[model] = {"wall_seconds": round(wall, 1), **results.mean,
                         "pixel_auroc_by_defect": {t: a for t, (a, _) in by_defect.items()}}
    metrics = [k for k in results.mean]
    print("\nmodel    wall_s  " + "  ".join(metrics))
    for model, r in report.items():
        print(f"{model:8s} {r['wall_seconds']:6.0f}  " + "  ".join(
            f"{100 * r[k]:6.2f}" if r[k] is not None else "     -" for k in metrics))
    out.mkdir(parents=True, exist_ok=True)
    (out / "magnetic_tile.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
