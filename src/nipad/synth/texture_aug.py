"""DRAEM's texture augmentation (3 distinct of 10 imgaug ops), rewritten with PIL / numpy so imgaug is not needed."""

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from nipad.synth._image import check_rgb, to_array, to_pil

TextureOp = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def gamma_contrast(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """GammaContrast((0.5, 2), per_channel): 255 * (x/255)^gamma with one gamma per channel."""
    gamma = rng.uniform(0.5, 2.0, size=3)
    return np.clip(np.round(255 * (x / 255.0) ** gamma), 0, 255).astype(np.uint8)


def multiply_and_add_brightness(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """MultiplyAndAddToBrightness(mul (0.8, 1.2), add (-30, 30)) on the luma (Y of YCbCr) channel."""
    y, cb, cr = to_pil(x).convert("YCbCr").split()
    luma = np.asarray(y, dtype=np.float64) * rng.uniform(0.8, 1.2) + rng.uniform(-30, 30)
    y = Image.fromarray(np.clip(np.round(luma), 0, 255).astype(np.uint8))
    return to_array(Image.merge("YCbCr", (y, cb, cr)))


def sharpness(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """pillike.EnhanceSharpness(factor (0, 2))."""
    return to_array(ImageEnhance.Sharpness(to_pil(x)).enhance(rng.uniform(0.0, 2.0)))


def hue_and_saturation(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """AddToHueAndSaturation((-50, 50), per_channel): independent offsets for hue (wrapping, 256 = a full turn,
    as imgaug maps +-255 to +-360 degrees) and saturation (clipped)."""
    hue, sat, val = (np.asarray(c, dtype=np.int16) for c in to_pil(x).convert("HSV").split())
    hue = (hue + int(rng.integers(-50, 51))) % 256
    sat = np.clip(sat + int(rng.integers(-50, 51)), 0, 255)
    channels = [Image.fromarray(c.astype(np.uint8)) for c in (hue, sat, val)]
    return to_array(Image.merge("HSV", channels))


def solarize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Solarize(p=0.5, threshold (32, 128)): with probability 0.5 invert the pixels at or above the threshold."""
    if rng.random() >= 0.5:
        return x.copy()
    return to_array(ImageOps.solarize(to_pil(x), threshold=int(rng.integers(32, 129))))


def posterize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Posterize(nb_bits (1, 8)): keep the top 1..8 bits of every channel."""
    return to_array(ImageOps.posterize(to_pil(x), int(rng.integers(1, 9))))


def fliplr(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fliplr(0.5): mirror left-right with probability 0.5."""
    return x[:, ::-1].copy() if rng.random() < 0.5 else x.copy()


def invert(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Invert: 255 - x."""
    return 255 - x


def autocontrast(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """pillike.Autocontrast(cutoff (0, 20) percent)."""
    return to_array(ImageOps.autocontrast(to_pil(x), cutoff=int(rng.integers(0, 21))))


def equalize(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """pillike.Equalize: histogram equalisation."""
    return to_array(ImageOps.equalize(to_pil(x)))


TEXTURE_OPS: tuple[TextureOp, ...] = (
    gamma_contrast,
    multiply_and_add_brightness,
    sharpness,
    hue_and_saturation,
    solarize,
    posterize,
    fliplr,
    invert,
    autocontrast,
    equalize,
)


def augment_texture(texture: np.ndarray, rng: np.random.Generator, n_ops: int = 3) -> np.ndarray:
    """Apply `n_ops` distinct ops drawn without replacement from TEXTURE_OPS, in the drawn order (DRAEM)."""
    check_rgb(texture, "texture")
    for index in rng.choice(len(TEXTURE_OPS), size=n_ops, replace=False):
        texture = TEXTURE_OPS[int(index)](texture, rng)
    return texture
