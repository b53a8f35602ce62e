"""CutPaste pseudo anomalies (Li et al. 2021) as used by OneNIP: a jittered rectangle or a thin rotated "scar"
cut from the image itself and pasted elsewhere. Masks are exactly the pasted pixels."""

import math

import numpy as np
from PIL import Image

from nipad.synth._image import check_rgb, to_array, to_pil
from nipad.synth.jitter import color_jitter

RECT_AREA_RATIO = (0.02, 0.15)
RECT_ASPECTS = ((0.3, 1.0), (1.0, 3.3))
SCAR_WIDTH = (2, 16)
SCAR_HEIGHT = (10, 25)
SCAR_ROTATION = (-45.0, 45.0)
SCAR_REFERENCE_SIDE = 256


def paste_patch(
    image: np.ndarray, patch: np.ndarray, alpha: np.ndarray, top: int, left: int
) -> tuple[np.ndarray, np.ndarray]:
    """Paste `patch` (hxwx3) where `alpha` (hxw bool) is set, with its top-left corner at (top, left).

    Parts falling outside the image are clipped. Returns the new image and the mask of pasted pixels."""
    height, width = image.shape[:2]
    out = image.copy()
    mask = np.zeros((height, width), dtype=bool)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + patch.shape[0], height), min(left + patch.shape[1], width)
    if y0 >= y1 or x0 >= x1:
        return out, mask
    sub_alpha = alpha[y0 - top : y1 - top, x0 - left : x1 - left]
    region = out[y0:y1, x0:x1]
    region[sub_alpha] = patch[y0 - top : y1 - top, x0 - left : x1 - left][sub_alpha]
    mask[y0:y1, x0:x1] = sub_alpha
    return out, mask


def _crop(image: np.ndarray, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A height x width crop with its top-left corner uniform over all valid positions."""
    top = int(rng.integers(0, image.shape[0] - height + 1))
    left = int(rng.integers(0, image.shape[1] - width + 1))
    return image[top : top + height, left : left + width]


def cutpaste_rect(image: np.ndarray, rng: np.random.Generator, jitter: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CutPaste rectangle: area U(0.02, 0.15)*H*W, aspect from U(0.3, 1) or U(1, 3.3) (50/50), cut from a random
    place, colour-jittered (unless `jitter` is False) and pasted at an independent random place.

    Returns (uint8 HxWx3 image, bool HxW mask of the pasted rectangle)."""
    check_rgb(image)
    height, width = image.shape[:2]
    area = rng.uniform(*RECT_AREA_RATIO) * height * width
    aspect = rng.uniform(*RECT_ASPECTS[int(rng.integers(0, 2))])
    cut_w = min(max(int(math.sqrt(area * aspect)), 1), width)
    cut_h = min(max(int(math.sqrt(area / aspect)), 1), height)
    patch = _crop(image, rng, cut_h, cut_w)
    if jitter:
        patch = color_jitter(patch, rng)
    top = int(rng.integers(0, height - cut_h + 1))
    left = int(rng.integers(0, width - cut_w + 1))
    return paste_patch(image, patch, np.ones((cut_h, cut_w), dtype=bool), top, left)


def cutpaste_scar(image: np.ndarray, rng: np.random.Generator, jitter: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CutPaste scar: a thin patch of width randint[2,16] and height randint[10,25], colour-jittered (unless
    `jitter` is False), rotated U(-45, 45) degrees with expand (PIL nearest) and pasted with its alpha as mask.

    Deviation: the authors use absolute pixels; here both sides are scaled by min(H, W) / 256 so a scar keeps the
    same relative size at other input sizes (identical at 256). As in the authors' code, the paste position is
    drawn from the un-rotated size, so the rotated patch may be clipped at the bottom/right border.

    Returns (uint8 HxWx3 image, bool HxW mask of the pasted pixels)."""
    check_rgb(image)
    height, width = image.shape[:2]
    scale = min(height, width) / SCAR_REFERENCE_SIDE
    cut_w = min(max(round(int(rng.integers(SCAR_WIDTH[0], SCAR_WIDTH[1] + 1)) * scale), 1), width)
    cut_h = min(max(round(int(rng.integers(SCAR_HEIGHT[0], SCAR_HEIGHT[1] + 1)) * scale), 1), height)
    patch = _crop(image, rng, cut_h, cut_w)
    if jitter:
        patch = color_jitter(patch, rng)
    angle = rng.uniform(*SCAR_ROTATION)
    rgba = to_pil(patch).convert("RGBA").rotate(angle, resample=Image.Resampling.NEAREST, expand=True)
    alpha = np.asarray(rgba.getchannel("A")) > 0
    top = int(rng.integers(0, height - cut_h + 1))
    left = int(rng.integers(0, width - cut_w + 1))
    return paste_patch(image, to_array(rgba), alpha, top, left)
