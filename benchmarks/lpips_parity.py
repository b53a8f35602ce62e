"""nipad's LPIPS (AlexNet, v0.1) vs the `lpips` package (0.1.4) with nipad's converted AlexNet trunk loaded into it,
on distorted copies of matplotlib's grace_hopper.jpg (256 x 256): each distance, their largest difference, and the
largest difference of the spatial maps AnomalySD uses; and, for comparison, the Lite0 stand-in's distance (the mean
of its map: a different scale, only its order means something).

    .venv/bin/python benchmarks/lpips_parity.py          (needs scripts/setup.sh's converted weights and `lpips`)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models" / "lpips"))
from lpips_reference import distortions, photo, reference_lpips

from nipad.models.anomalysd.perceptual import create_perceptual, distance_map, perceptual_distance
from nipad.models.lpips.lpips_net import LPIPS
from nipad.models.lpips.weights import load_weights


@torch.no_grad()
def main() -> None:
    torch.set_num_threads(1)
    tensors = load_weights()
    ours, theirs, theirs_map = LPIPS.pretrained(), reference_lpips(tensors), reference_lpips(tensors, spatial=True)
    lite0 = create_perceptual("lite0")
    x = photo()
    print(f"{'distortion':<10} {'nipad':>10} {'lpips':>10} {'|diff|':>9} {'map max |diff|':>15} {'lite0':>8}")
    for name, y in distortions(x).items():
        mine, ref = ours(x, y).item(), theirs(x * 2 - 1, y * 2 - 1).item()
        map_diff = (distance_map(ours, ours.stages(x), ours.stages(y), x.shape[-1])
                    - theirs_map(x * 2 - 1, y * 2 - 1)).abs().max().item()
        stand_in = perceptual_distance(lite0, x, y).mean().item()
        print(f"{name:<10} {mine:>10.6f} {ref:>10.6f} {abs(mine - ref):>9.1e} {map_diff:>15.1e} {stand_in:>8.4f}")


if __name__ == "__main__":
    main()
