"""How many prompts per class the nipad preset keeps: one trained run rescored with P prompts per class (the most
typical image, then k-center, as the trainer picks them), the validated fusion refitted on the validation set for
each P, scored on the validation set (what P is chosen on) and the test split.

    .venv/bin/python benchmarks/prompt_pool_size.py RUN_DIR --data ROOT [--data ROOT2 ...] [--sizes 16,64,256]
        [--json OUT]

The network's weights do not depend on P: it changes the prompt each image is decoded with (its most similar one)
and the tokens the matching map searches.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from map_fusion import collect, open_run, outputs, validated  # beside this file
from nipad.engine.evaluate import score
from nipad.engine.features import default_cache_dir, feature_bank
from nipad.runs.feature_cache import FeatureCache
from nipad.models.prompt_pool import spread


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--sizes", default="16,64,256")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--validation-dir", type=Path, default=Path("/tmp/nipad-map-fusion-validation"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data, detector, train, val = open_run(args.run, args.data, args.validation_dir)
    size, pool = detector.config.image_size, detector.config.score_pool
    cache = FeatureCache(default_cache_dir(), detector.extractor.fingerprint, size, max_memory_bytes=0,
                         max_disk_bytes=2 << 30)
    bank = feature_bank(detector.extractor, train, size, torch.device("cpu"), cache=cache)
    classes = detector.prompts.class_names
    owner = np.array([classes.index(s.class_name) for s in train])
    rows = []
    for p in (int(x) for x in args.sizes.split(",")):
        detector.prompts.load([], torch.empty(0), torch.empty(0, dtype=torch.long))
        for c, name in enumerate(classes):
            members = np.flatnonzero(owner == c)
            detector.prompts.add(name, bank[torch.as_tensor(members[spread(bank[members], p)])].float())
        maps = {"validation": collect(detector, val), "test": collect(detector, data.test)}
        fused, fit = validated(maps["validation"], ("rec", "ref", "match"), pool)
        for label, samples in (("validation", val), ("test", data.test)):
            results = score(outputs(maps[label], fused(maps[label]), pool), samples, size)
            rows.append({"prompts_per_class": p, "set": label, "weights": fit.weights.tolist(), "mean": results.mean,
                         "per_class": {k: v["image_auroc"] for k, v in results.per_class.items()}})
            print(f"P {p:4d} {label:10s} weights {[round(w, 2) for w in fit.weights.tolist()]} "
                  + " ".join(f"{k} {100 * v:.1f}" for k, v in results.mean.items() if v is not None)
                  + " | image AUROC " + " ".join(f"{k} {100 * v:.1f}" for k, v in rows[-1]["per_class"].items()),
                  flush=True)
    if args.json:
        args.json.write_text(json.dumps({"run": str(args.run), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
