"""The development benchmark: one unified model per method over the five real products in ../shared/datasets
(MVTec AD bottle, magnetic tile, MVTec 3D-AD tire, MVTec LOCO juice_bottle, ADFI hazelnut), as a user trains it.

    .venv/bin/python benchmarks/real_data.py [--methods onenip,patchcore,padim,knn] [--threads 2] [--reuse] [--merge]
        [--shared ../shared/datasets] [--out benchmarks/results/real_data]

It is `benchmarks/table.py` on those five roots with `--validate`: the seven metrics per product and their mean on
the test split and on the validation set (held-out normal training images + pseudo anomalies), train time, inference
images/s and peak memory per method. Other table.py options pass through (e.g. `--methods onenip
--train-args='--preset cpu' --tag cpu --merge` for the authors' method at the cpu budget).
"""

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

import table  # noqa: E402  (the benchmark table, beside this file)

PRODUCTS = ("mvtec_bottle", "magnetic_tile", "mvtec3d_tire", "mvtec_loco_juice_bottle", "adfi_hazelnut")


def argv(args: list[str]) -> list[str]:
    """table.py's command line: the five products under --shared, validation on, the methods and output given."""
    shared = Path(args[args.index("--shared") + 1]) if "--shared" in args else HERE.parent.parent / "shared" / "datasets"
    rest = [a for i, a in enumerate(args) if a != "--shared" and (i == 0 or args[i - 1] != "--shared")]
    missing = [p for p in PRODUCTS if not (shared / p).is_dir()]
    if missing:
        raise SystemExit(f"real_data: {', '.join(missing)} not found under {shared} (give --shared DIR)")
    data = [a for p in PRODUCTS for a in ("--data", str(shared / p))]
    defaults = [] if "--methods" in rest else ["--methods", "onenip,patchcore,padim,knn"]
    defaults += [] if "--out" in rest else ["--out", str(HERE / "results" / "real_data")]
    defaults += [] if "--threads" in rest else ["--threads", "2"]
    return [str(HERE / "table.py"), *data, "--validate", *defaults, *rest]


if __name__ == "__main__":
    sys.argv = argv(sys.argv[1:])
    table.main()
