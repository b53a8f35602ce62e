"""Colour jitter with PIL only, matching torchvision's ColorJitter (PIL backend) without depending on torchvision."""

import numpy as np
from PIL import Image, ImageEnhance

from nipad.synth._image import check_rgb, to_array, to_pil


def _adjust_hue(image: Image.Image, hue_factor: float) -> Image.Image:
    """Rotate the hue by `hue_factor` turns (in [-0.5, 0.5]) in PIL's 8-bit HSV, as torchvision does."""
    hue, sat, val = image.convert("HSV").split()
    shifted = (np.asarray(hue, dtype=np.uint8).astype(np.int16) + round(hue_factor * 255)) % 256
    hue = Image.fromarray(shifted.astype(np.uint8))
    return Image.merge("HSV", (hue, sat, val)).convert("RGB")


def color_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    brightness: float = 0.4,
    contrast: float = 0.4,
    saturation: float = 0.4,
    hue: float = 0.1,
) -> np.ndarray:
    """ColorJitter(brightness, contrast, saturation, hue): factors U(1-b, 1+b) etc., hue shift U(-hue, hue),
    applied in a random order (CutPaste's patch augmentation). Like torchvision, an op of strength 0 is skipped."""
    check_rgb(image)
    strengths = {"brightness": brightness, "contrast": contrast, "saturation": saturation}
    factors = {name: rng.uniform(max(0.0, 1 - s), 1 + s) for name, s in strengths.items() if s > 0}
    if hue > 0:
        factors["hue"] = rng.uniform(-hue, hue)
    enhancers = {
        "brightness": ImageEnhance.Brightness,
        "contrast": ImageEnhance.Contrast,
        "saturation": ImageEnhance.Color,
    }
    pil = to_pil(image)
    for name in rng.permutation(list(factors)):
        pil = _adjust_hue(pil, factors[name]) if name == "hue" else enhancers[name](pil).enhance(factors[name])
    return to_array(pil)
