"""The benchmark table: several methods on the same data, backbone and seeds, side by side.

    .venv/bin/python benchmarks/table.py --data ROOT [--data ROOT2 ...] [--methods patchcore,padim-separate,onenip]
        [--shots K] [--image-size 224] [--seed 133] [--threads 1] [--epochs N] [--out DIR] [--merge]

Methods: patchcore, padim, knn (unified; add -separate or -unified for the mode), onenip, uniad (`--preset nipad`,
the default without a GPU; another preset with --train-args='--preset cpu' --tag cpu).
Each method runs in its own subprocess, which calls `nipad train` then evaluates the run on the test split, so its
peak memory (ru_maxrss) is its own. Writes DIR/table[-Kshot].md and .json: the seven metrics per class and their
mean, train time (the whole `nipad train`, calibration included), inference images/s (decoding + model, batch 8)
and peak resident memory of train + inference (python, torch and the backbone included; the metrics come after),
and of train alone; the runs are kept in DIR/runs/. `--merge` keeps the rows of methods not rerun from DIR's table of
the same data, shots, image size and seed, so a slow method can be added (or rerun with more threads) on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
METHODS = ("patchcore", "patchcore-separate", "padim", "padim-separate", "knn", "onenip", "uniad")
BASELINES = ("patchcore", "padim", "knn")


def train_argv(method: str, data: list[str], run_dir: Path, args: argparse.Namespace) -> list[str]:
    """The `nipad train` command line of `method`."""
    model, _, mode = method.partition("-")
    argv = ["train", *[a for root in data for a in ("--data", root)], "--model", model, "--out", str(run_dir),
            "--seed", str(args.seed), "--overwrite"]
    if args.image_size:
        argv += ["--image-size", str(args.image_size)]
    if args.shots:
        argv += ["--shots", str(args.shots)]
    if model in BASELINES:
        argv += ["--mode", mode or "unified"]
    else:
        argv += ["--preset", "nipad"] + (["--epochs", str(args.epochs)] if args.epochs else [])
        argv += args.train_args.split()
    return argv


def method_name(method: str, args: argparse.Namespace) -> str:
    """The row's name: the method, with --tag for OneNIP / UniAD variants made by --train-args."""
    return f"{method}-{args.tag}" if args.tag and method.partition("-")[0] not in BASELINES else method


def run_one(method: str, args: argparse.Namespace) -> dict:
    """In the worker process: train through the CLI, evaluate, time, measure."""
    import torch

    from nipad.cli.common import open_data
    from nipad.cli.main import main as nipad
    from nipad.engine.evaluate import infer, score
    from nipad.families import load_run

    torch.set_num_threads(args.threads)
    name = method_name(method, args)
    run_dir = Path(args.out) / "runs" / (name + (f"-{args.shots}shot" if args.shots else ""))
    started = time.perf_counter()
    reused = args.reuse and (run_dir / "config.json").is_file() and json.loads(
        (run_dir / "config.json").read_text(encoding="utf-8")).get("finished", False)
    if not reused and nipad(train_argv(method, args.data, run_dir, args)) != 0:
        raise SystemExit(f"nipad train failed for {method}")
    train_seconds = time.perf_counter() - started
    train_peak = None if reused else _peak_mib()
    detector, info = load_run(run_dir)
    if reused:
        train_seconds = info.extra.get("train_seconds", float("nan"))
    test = open_data(args.data, None).test
    started = time.perf_counter()
    with torch.inference_mode():
        outputs = infer(detector, test)
    infer_seconds = time.perf_counter() - started
    peak = _peak_mib()  # before the metrics, whose pixel sorts are the protocol's cost, not the method's
    results = score(outputs, test, detector.config.image_size, {"method": name, "run_dir": str(run_dir)})
    results.to_json(run_dir / "metrics.json")
    validation = None
    if args.validate:
        samples = validation_set(args)
        validation = score(infer(detector, samples), samples, detector.config.image_size).mean
    return {
        "method": name, "validation": validation, "run_dir": str(run_dir), "train_seconds": round(train_seconds, 1),
        "reused": bool(reused), "validation_auroc": info.extra.get("validation_auroc"),
        "images_per_second": round(len(test) / infer_seconds, 2),
        "peak_rss_mib": peak, "train_peak_rss_mib": train_peak,
        "mean": results.mean, "per_class": results.per_class, "n_images": results.n_images,
    }


def validation_set(args: argparse.Namespace) -> list:
    """The pseudo-anomaly validation set of the training data (held-out normals + one pseudo anomaly each), written
    under DIR/validation (the same files for every method); the held-out images are the calibration split every
    method holds out."""
    from nipad.cli.common import open_data
    from nipad.engine.train_config import TrainConfig
    from nipad.runs.split import split_calibration
    from nipad.engine.validation import pseudo_validation_set

    fraction = TrainConfig().calibration_fraction
    train, held = split_calibration(open_data(args.data, None).train, fraction, args.seed)
    return pseudo_validation_set(held, train, args.image_size or 224, Path(args.out) / "validation")


def merged_rows(previous: dict, report: dict) -> list[dict]:
    """`previous`'s rows with those of `report` put in place (same method) or appended; refuses a table of other
    data or settings, whose rows would not be comparable."""
    keys = ("data", "shots", "image_size", "seed")
    if any(previous.get(k) != report[k] for k in keys):
        raise SystemExit(f"table: --merge: the existing table was made with other settings "
                         f"({', '.join(f'{k}={previous.get(k)}' for k in keys)}); use another --out")
    fresh = {r["method"]: r for r in report["methods"]}
    rows = [fresh.pop(r["method"], {"threads": previous.get("threads"), **r}) for r in previous["methods"]]
    return rows + list(fresh.values())


def _peak_mib() -> float:
    """This process's peak resident memory so far (Linux reports ru_maxrss in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def markdown(report: dict) -> str:
    """Mean table (metrics, time, speed, memory), then one table per class."""
    from nipad.metrics import METRIC_NAMES

    rows = report["methods"]
    head = "| method | " + " | ".join(METRIC_NAMES)
    lines = [f"# Benchmark: {', '.join(report['data'])}", "",
             f"shots: {report['shots'] or 'all'} · image size: {report['image_size'] or 'default'} · seed "
             f"{report['seed']} · {report['machine']}", "",
             "## Mean over classes (metrics in %)", "",
             head + " | train s | images/s | peak MiB (train) | threads |", "|---" * (len(METRIC_NAMES) + 5) + "|"]
    for r in rows:
        lines.append(f"| {r['method']} | " + " | ".join(_pct(r["mean"][m]) for m in METRIC_NAMES)
                     + f" | {r['train_seconds']:.0f} | {r['images_per_second']:.1f} | {r['peak_rss_mib']:.0f} "
                     f"({_mib(r['train_peak_rss_mib'])}) | {r.get('threads', '-')} |")
    if any(r.get("validation") for r in rows):
        lines += ["", "## Validation: held-out normal training images + pseudo anomalies (metrics in %)", "",
                  head + " |", "|---" * (len(METRIC_NAMES) + 1) + "|"]
        lines += [f"| {r['method']} | " + " | ".join(_pct(r["validation"][m]) for m in METRIC_NAMES) + " |"
                  for r in rows if r.get("validation")]
    classes = sorted({c for r in rows for c in r["per_class"]})
    for name in classes:
        lines += ["", f"## {name}", "", head + " |", "|---" * (len(METRIC_NAMES) + 1) + "|"]
        for r in rows:
            if name in r["per_class"]:
                lines.append(f"| {r['method']} | " + " | ".join(_pct(r["per_class"][name][m]) for m in METRIC_NAMES)
                             + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, metavar="ROOT")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--shots", type=int, help="K normal training images per class (seeded)")
    parser.add_argument("--image-size", type=int)
    parser.add_argument("--seed", type=int, default=133)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per method")
    parser.add_argument("--epochs", type=int, help="onenip/uniad epochs (default: the cpu preset's)")
    parser.add_argument("--train-args", default="", metavar="ARGS",
                        help="more `nipad train` options for onenip/uniad, e.g. '--neck mfcn' (name the rows with --tag)")
    parser.add_argument("--tag", help="suffix of the onenip/uniad row names (a variant made by --train-args)")
    parser.add_argument("--validate", action="store_true",
                        help="also score each run on held-out normal training images + pseudo anomalies of them "
                             "(the metrics to choose settings by; never the test split)")
    parser.add_argument("--out", default=str(HERE / "results" / "table"))
    parser.add_argument("--merge", action="store_true", help="keep the other methods' rows of DIR's existing table")
    parser.add_argument("--reuse", action="store_true", help="score finished runs already in DIR/runs/ as they are")
    parser.add_argument("--worker", metavar="METHOD", help=argparse.SUPPRESS)
    parser.add_argument("--result", metavar="JSON", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        Path(args.result).write_text(json.dumps(run_one(args.worker, args)))
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m.partition("-")[0] not in (*BASELINES, "onenip", "uniad")
               or m.partition("-")[2] not in ("", "separate", "unified")]
    if unknown:
        parser.error(f"unknown method {unknown[0]!r}; choose from {', '.join(METHODS)} (+ -unified)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in methods:
        result = out / f".{method}.json"
        worker = [sys.executable, __file__, *sys.argv[1:], "--worker", method, "--result", str(result)]
        code = subprocess.call(worker)
        if code != 0:
            print(f"table: {method} failed (exit {code}); left out", file=sys.stderr)
            continue
        rows.append({**json.loads(result.read_text()), "threads": args.threads, "epochs": args.epochs})
        result.unlink()
        r = rows[-1]
        print(f"table: {method}: image AUROC {_pct(r['mean']['image_auroc'])}, pixel AUROC "
              f"{_pct(r['mean']['pixel_auroc'])}, train {r['train_seconds']:.0f} s, {r['images_per_second']:.1f} "
              f"img/s, {r['peak_rss_mib']:.0f} MiB", flush=True)
    report = {"data": args.data, "shots": args.shots, "image_size": args.image_size, "seed": args.seed,
              "methods": rows,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"}
    suffix = f"-{args.shots}shot" if args.shots else ""
    if args.merge and (out / f"table{suffix}.json").is_file():
        report["methods"] = merged_rows(json.loads((out / f"table{suffix}.json").read_text()), report)
    (out / f"table{suffix}.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / f"table{suffix}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
