"""What each map and each fusion gives, on one trained OneNIP run: the validation set (held-out normal training
images + pseudo anomalies: what settings are chosen on) and the test split, side by side.

    .venv/bin/python benchmarks/map_fusion.py RUN_DIR --data ROOT [--data ROOT2 ...] [--json OUT]

The network's weights do not depend on the fusion, so one run is scored under each: the authors' fixed fusion
(w = 0.5, and the earlier cpu preset's w = 1) with one prompt per class (the cpu preset's pool: the most typical
image, the first of nipad's k-center pool), the validated fusion without token matching, the matching map alone,
the validated fusion of all three maps with the image score from the fused map (`--score-map anomaly`), and, for a
run with a token bank, the same with matching against the 16 prompts' tokens only (the earlier default, `--match-coreset
0`). `as trained` is the run's own stored fusion (what `nipad test` gives).
The validated variants are refitted here on the validation set's pseudo anomalies (`nipad.models.onenip.fusion`); the
trainer fits the run's own on another draw of them. The fixed fusion's c is (max + min) / 2 of the validation
set's reconstruction maps (the trainer takes it over held-out normals and another pseudo-anomaly draw).
"""

import argparse
import json
from collections import defaultdict
from pathlib import Path

import torch

from nipad.cli.common import open_data
from nipad.runs.checkpoint import load_detector, read_info
from nipad.engine.evaluate import Outputs, batches, score
from nipad.runs.split import split_calibration
from nipad.engine.validation import pseudo_validation_set
from nipad.models.onenip.fusion import MAPS, fit_fusion, fuse, image_score

KEYS = ("rec_map", "ref_map", "match_map", "anomaly_map")


def collect(detector, samples) -> dict:
    """Each image's maps (`KEYS`), served score, label, mask, class and path, from one pass of the model."""
    kept = defaultdict(list)
    with torch.inference_mode():
        for batch, pred in batches(detector, samples):
            if pred is None:
                continue
            for key in KEYS:
                if pred.get(key) is not None:
                    kept[key].append(pred[key].float())
            kept["pred_score"].append(pred["pred_score"].float())
            for j, name in enumerate(batch["class_name"]):
                kept["meta"].append((name, int(batch["label"][j]), batch["mask"][j, 0].numpy() > 0.5, batch["path"][j]))
    return {**{k: torch.cat(kept[k]) if kept[k] else None for k in (*KEYS, "pred_score")}, "meta": kept["meta"]}


def outputs(maps: dict, anomaly_map: torch.Tensor, pool: int, scores: torch.Tensor | None = None) -> Outputs:
    """Per-image outputs with `anomaly_map`; image scores `scores`, else the peak of the map (image_score)."""
    scores = image_score(anomaly_map, pool) if scores is None else scores
    out = Outputs()
    for i, (name, label, mask, path) in enumerate(maps["meta"]):
        out.add(name, float(scores[i]), label, anomaly_map[i, 0].numpy(), mask, path)
    return out


def validated(val: dict, keep: tuple[str, ...], pool: int):
    """The validated fusion over the maps `keep`, fitted on the validation set's normal and pseudo-anomalous images."""
    normal = torch.tensor([label == 0 for _, label, _, _ in val["meta"]])
    split = [[val[f"{m}_map"][rows] if m in keep and val[f"{m}_map"] is not None else None for m in MAPS]
             for rows in (normal, ~normal)]
    fit = fit_fusion(split[0], split[1], pool)
    return lambda maps: fuse([maps[f"{m}_map"] if m in keep else None for m in MAPS], fit.weights, fit.shift,
                             fit.scale), fit


def open_run(run: Path, roots: list[str], validation_dir: Path):
    """(data, detector, training split, validation samples) of a trained run: the training images it trained on
    and the validation set made from its held-out images."""
    data = open_data(roots, None)
    detector, _ = load_detector(run)
    settings = read_info(run).train
    train, held = split_calibration(data.train, settings["calibration_fraction"], settings["seed"])
    return data, detector, train, pseudo_validation_set(held, train, detector.config.image_size, validation_dir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--validation-dir", type=Path, default=Path("/tmp/nipad-map-fusion-validation"))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data, detector, _, val_samples = open_run(args.run, args.data, args.validation_dir)
    size, pool = detector.config.image_size, detector.config.score_pool
    sets = {"validation": (val_samples, collect(detector, val_samples)), "test": (data.test, collect(detector, data.test))}
    prompts_only = None
    if getattr(detector, "bank", None) is not None:
        bank, detector.bank = detector.bank, None  # match against the prompts' tokens, then put the bank back
        prompts_only = {"validation": collect(detector, val_samples), "test": collect(detector, data.test)}
        detector.bank = bank
    first = torch.tensor([i for i, o in enumerate(detector.prompts.owners.tolist())
                          if o not in detector.prompts.owners[:i].tolist()])
    detector.prompts.load(detector.prompts.class_names, detector.prompts.features[first],
                          detector.prompts.owners[first])  # the cpu preset's pool: each class's most typical image
    one_prompt = {"validation": collect(detector, val_samples), "test": collect(detector, data.test)}
    val_rec = one_prompt["validation"]["rec_map"]
    c = float(val_rec.amin() + val_rec.amax()) / 2
    variants = {"as trained": (lambda maps: maps["anomaly_map"], False, lambda maps: maps["pred_score"])}
    for w in (0.5, 1.0):
        variants[f"fixed w={w:g}, 1 prompt/class"] = (lambda maps, w=w: (1 - w) * maps["rec_map"]
                                                       + w * c * maps["ref_map"], True, None)
    fits = {}
    for keep in (("rec", "ref"), ("match",), ("rec", "ref", "match")):
        name = "validated " + "+".join(keep) + (", score from the fused map" if len(keep) == 3 else "")
        fused, fits[name] = validated(sets["validation"][1], keep, pool)
        variants[name] = (fused, False, None)
    if prompts_only is not None:
        name = "validated rec+ref+match, 16 prompts' tokens, score from the fused map"
        fused, fits[name] = validated(prompts_only["validation"], ("rec", "ref", "match"), pool)
        variants[name] = (fused, "prompts", None)
    report = {"run": str(args.run), "c": c, "rows": [],
              "fits": {k: {"weights": f.weights.tolist(), "auroc": {m: None if a != a else a for m, a in f.auroc.items()}}
                       for k, f in fits.items()}}
    for name, (fused, single, scores) in variants.items():
        for label, (samples, maps) in sets.items():
            chosen = prompts_only[label] if single == "prompts" else one_prompt[label] if single else maps
            results = score(outputs(chosen, fused(chosen), pool, None if scores is None else scores(chosen)), samples, size)
            report["rows"].append({"variant": name, "set": label, "mean": results.mean,
                                   "per_class": results.per_class})
            print(f"{name:34s} {label:10s} " + " ".join(f"{k} {100 * v:.1f}" for k, v in results.mean.items()
                                                       if v is not None)
                  + " | image AUROC " + " ".join(f"{k} {100 * v['image_auroc']:.1f}"
                                                 for k, v in results.per_class.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
