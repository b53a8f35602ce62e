"""Start-up time of the command line: wall time of `nipad --help`, `nipad --version`, `nipad data` (a tiny made-up
data set) and `import nipad`, each in a fresh process, against `python -c "import torch"` on the same machine.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 3] [--json PATH]

Each command runs --repeats times (after one untimed run that warms the file cache); the median is printed with its
ratio to the median of `import torch`: below 1 means the command starts faster than torch alone imports. The nipad
commands run as `python -m nipad.cli.main` with this interpreter (what the `nipad` script runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import make_mvtec  # noqa: E402  (the tests' tiny MVTec-layout data set)


def wall_time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def median_time(argv: list[str], repeats: int) -> float:
    wall_time(argv)  # warm the file cache
    return statistics.median(wall_time(argv) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    args = parser.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        data = make_mvtec(Path(tmp) / "data", n_train=4, n_good=1, n_bad=1, size=32)
        commands = {
            'python -c "import torch"': [py, "-c", "import torch"],
            "nipad --help": [py, "-m", "nipad.cli.main", "--help"],
            "nipad --version": [py, "-m", "nipad.cli.main", "--version"],
            "nipad data --data DIR": [py, "-m", "nipad.cli.main", "data", "--data", str(data)],
            'python -c "import nipad"': [py, "-c", "import nipad"],
            'python -c "import sys"': [py, "-c", "import sys"],
        }
        times = {name: median_time(argv, args.repeats) for name, argv in commands.items()}
    torch_s = times['python -c "import torch"']
    print(f"median wall time of {args.repeats} runs each (python {sys.version.split()[0]}):")
    print(f"{'command':<28} {'seconds':>8} {'x import torch':>15}")
    for name, seconds in times.items():
        print(f"{name:<28} {seconds:>8.3f} {seconds / torch_s:>15.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"repeats": args.repeats, "seconds": times,
                                               "ratio_to_import_torch": {k: v / torch_s for k, v in times.items()}},
                                              indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
