"""The reference for nipad's LPIPS: the `lpips` package (0.1.4, its own v0.1 heads) with nipad's converted AlexNet
trunk loaded into it (it would otherwise download torchvision's), and distorted copies of a natural photograph
(matplotlib's sample grace_hopper.jpg: the lpips example images are not in its PyPI package). Used by the LPIPS
tests and benchmarks/lpips_parity.py."""

from __future__ import annotations

import io
import warnings

import matplotlib.cbook
import numpy as np
import torch
from PIL import Image
from torchvision.transforms.functional import gaussian_blur

SIZE = 256
TAPS = {1: 0, 2: 3, 3: 6, 4: 8, 5: 10}  # lpips's alexnet slice -> its conv's index in alexnet().features


def reference_lpips(tensors: dict[str, torch.Tensor], spatial: bool = False):
    """lpips.LPIPS(net="alex") with the trunk's convolutions from `tensors` (nipad's converted file)."""
    import lpips

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's deprecation of `pretrained`, which lpips passes
        model = lpips.LPIPS(net="alex", pnet_rand=True, spatial=spatial, verbose=False)
    model.net.load_state_dict({f"slice{s}.{i}.{p}": tensors[f"features.{i}.{p}"]
                               for s, i in TAPS.items() for p in ("weight", "bias")})
    return model.eval()


def photo() -> torch.Tensor:
    """(1, 3, 256, 256) in [0, 1]: the centre square of grace_hopper.jpg, resized."""
    image = Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB")
    w, h = image.size
    side = min(w, h)
    box = ((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2)
    array = np.asarray(image.crop(box).resize((SIZE, SIZE), Image.BICUBIC), dtype=np.float32) / 255
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


def _jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray((x[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(buffer, "JPEG",
                                                                                        quality=quality)
    return torch.from_numpy(np.asarray(Image.open(buffer), dtype=np.float32) / 255).permute(2, 0, 1)[None]


def distortions(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Named distorted copies of x, seeded: "blur" and "noise" are the pair whose order the tests check."""
    g = torch.Generator().manual_seed(0)
    return {
        "blur": gaussian_blur(x, kernel_size=9, sigma=2.0),
        "noise": (x + 0.08 * torch.randn(x.shape, generator=g)).clamp(0, 1),
        "jpeg": _jpeg(x, 10),
        "brighter": (x + 0.1).clamp(0, 1),
        "shift": torch.roll(x, shifts=(2, 2), dims=(2, 3)),
    }
