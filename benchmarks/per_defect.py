"""Image AUROC per defect type (each type's test images against the class's normal test images) of trained runs of
any model: which defects a model misses. With --token-knn, also a kNN on each OneNIP/UniAD run's own neck tokens
(1-NN distance to every training token, scored as the run scores its map), which says whether the tokens the
reconstruction network reads carry the signal it missed.

    .venv/bin/python benchmarks/per_defect.py RUN [RUN ...] --data ROOT [--data ROOT2] [--token-knn]
        [--fusion-weight W] [--json OUT]

--fusion-weight scores OneNIP runs at that w instead of the one they were trained with (training does not read it).
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from nipad.cli.common import open_data
from nipad.engine.evaluate import infer
from nipad.families import load_run
from nipad.engine.features import feature_bank
from nipad.runs.split import split_calibration
from nipad.metrics import auroc
from nipad.models.onenip.detector import Detector, image_score, upsample
from nipad.models.baselines.memory_bank import nearest_neighbours


def per_defect(scores: dict[str, float], samples) -> dict[str, dict[str, float]]:
    """{class: {defect type: image AUROC of that type against the class's normal images}} (in %)."""
    kinds: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for s in samples:
        if str(s.image_path) in scores:
            kinds[s.class_name][s.defect_type].append(scores[str(s.image_path)])
    table = {}
    for name, by_type in sorted(kinds.items()):
        normal = by_type.get("good", [])
        table[name] = {kind: 100 * auroc(np.array(normal + found), np.array([0] * len(normal) + [1] * len(found)))
                       for kind, found in sorted(by_type.items()) if kind != "good" and normal}
    return table


def model_scores(model, samples) -> dict[str, float]:
    """Each readable test image's score from the run, by path."""
    out = infer(model, samples)
    return {path: score for name in out.scores for path, score in zip(out.paths[name], out.scores[name])}


@torch.no_grad()
def token_knn_scores(detector: Detector, train_settings: dict, data) -> dict[str, float]:
    """1-NN distance of every test token to the run's own training tokens (the images it trained on), upsampled and
    scored with the run's image score."""
    train, _ = split_calibration(data.train, train_settings["calibration_fraction"], train_settings["seed"])
    size, cpu = detector.config.image_size, torch.device("cpu")
    bank = feature_bank(detector.extractor, train, size, cpu).float()
    tokens = bank.permute(0, 2, 3, 1).reshape(-1, bank.shape[1])
    test = feature_bank(detector.extractor, data.test, size, cpu).float()
    n, c, h, w = test.shape
    distance, _ = nearest_neighbours(test.permute(0, 2, 3, 1).reshape(-1, c), tokens)
    scores = image_score(upsample(distance[:, 0].reshape(n, 1, h, w), size), detector.config.score_pool)
    return {str(s.image_path): float(v) for s, v in zip(data.test, scores)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--token-knn", action="store_true", help="also a kNN on each OneNIP/UniAD run's neck tokens")
    parser.add_argument("--fusion-weight", type=float, metavar="W", help="score OneNIP runs at this fusion weight")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = open_data(args.data, None)
    report = {}
    for run in args.runs:
        model, info = load_run(run)
        if args.fusion_weight is not None and isinstance(model, Detector):
            model.config = model.config.with_overrides(fusion_weight=args.fusion_weight)
        rows = {run.name: model_scores(model, data.test)}
        if args.token_knn and isinstance(model, Detector):
            rows[f"{run.name} token-kNN"] = token_knn_scores(model, info.train, data)
        for label, scores in rows.items():
            report[label] = per_defect(scores, data.test)
            print(f"{label}: " + " | ".join(f"{name} " + " ".join(f"{kind} {v:.1f}" for kind, v in kinds.items())
                                            for name, kinds in report[label].items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
