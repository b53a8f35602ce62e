"""Greedy coreset time on one class's tokens, whole or in runs of at most CORESET_CHUNK tokens (the token bank's way).

    .venv/bin/python benchmarks/coreset_speed.py [--tokens 60000] [--dim 272] [--ratio 0.1] [--threads 2]

Prints the seconds of each and how well each covers the tokens (the largest and mean distance of a token to its
nearest coreset token, on a sample), for random Gaussian tokens (a stand-in: timing depends on the sizes only).
"""

import argparse
import math
import time

import torch

from nipad.models.baselines.memory_bank import greedy_coreset
from nipad.models.onenip.matching import CORESET_CHUNK


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=60_000)
    p.add_argument("--dim", type=int, default=272)
    p.add_argument("--ratio", type=float, default=0.1)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    x = torch.randn(args.tokens, args.dim, generator=torch.Generator().manual_seed(0))
    sample = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(1))[:2000]]
    runs = x.tensor_split(math.ceil(len(x) / CORESET_CHUNK))
    for name, pick in (("whole", lambda: x[greedy_coreset(x, math.ceil(args.ratio * len(x)), seed=0)]),
                       (f"runs of <= {CORESET_CHUNK}", lambda: torch.cat(
                           [r[greedy_coreset(r, math.ceil(args.ratio * len(r)), seed=i)] for i, r in enumerate(runs)]))):
        started = time.perf_counter()
        kept = pick()
        seconds = time.perf_counter() - started
        nearest = torch.cdist(sample, kept).amin(dim=1)
        print(f"{name:>18}: {len(kept)} of {len(x)} tokens in {seconds:.1f} s; distance to the coreset max "
              f"{nearest.max():.2f}, mean {nearest.mean():.2f}", flush=True)


if __name__ == "__main__":
    main()
