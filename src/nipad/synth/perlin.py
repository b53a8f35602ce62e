"""DRAEM-style Perlin-noise anomalies: a thresholded Perlin blob selects where a texture is blended into the image."""

import math

import numpy as np
from scipy import ndimage

from nipad.synth._image import check_rgb

SCALE_EXPONENTS = (1, 5)
ROTATION_DEG = (-5.0, 5.0)
THRESHOLD = 0.5
BETA_MAX = 0.8
MAX_TRIES = 5


def _fade(t: np.ndarray) -> np.ndarray:
    """Perlin's quintic fade 6t^5 - 15t^4 + 10t^3."""
    return ((6 * t - 15) * t + 10) * t**3


def perlin_noise(shape: tuple[int, int], scales: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """DRAEM's rand_perlin_2d: gradient noise with scales[0] x scales[1] lattice cells over an HxW field, times
    sqrt(2) so values lie in [-1, 1].

    Any H, W work: the field is computed on a size padded up to a multiple of the scale and cropped (DRAEM needs
    H, W divisible by the scale). Returns a float64 HxW array."""
    height, width = shape
    if height < 1 or width < 1 or min(scales) < 1:
        raise ValueError(f"perlin_noise needs positive shape and scales, got shape={shape}, scales={scales}")
    axes = []
    for size, res in zip((height, width), scales):
        cell = math.ceil(size / res)
        pos = np.arange(cell * res)[:size] / cell
        axes.append((pos.astype(np.int64), pos % 1))
    (iy, ty), (ix, tx) = axes
    angles = 2 * math.pi * rng.random((scales[0] + 1, scales[1] + 1))
    grad_y, grad_x = np.cos(angles), np.sin(angles)
    fy, fx = ty[:, None], tx[None, :]

    def corner(dy: int, dx: int) -> np.ndarray:
        rows, cols = (iy + dy)[:, None], (ix + dx)[None, :]
        return (fy - dy) * grad_y[rows, cols] + (fx - dx) * grad_x[rows, cols]

    uy, ux = _fade(fy), _fade(fx)
    top = corner(0, 0) + ux * (corner(0, 1) - corner(0, 0))
    bottom = corner(1, 0) + ux * (corner(1, 1) - corner(1, 0))
    return math.sqrt(2) * (top + uy * (bottom - top))


def _draw_scale(size: int, rng: np.random.Generator) -> int:
    """2^randint[1,5], capped so one noise period spans at least 2 pixels."""
    return max(1, min(2 ** int(rng.integers(SCALE_EXPONENTS[0], SCALE_EXPONENTS[1] + 1)), size // 2))


def perlin_mask(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Binary anomaly region: Perlin noise with random per-axis scales, rotated U(-5, 5) degrees (OneNIP; DRAEM
    uses +-90), thresholded at 0.5. Redrawn up to MAX_TRIES times while empty; after that the top 10% of the
    last noise is used so the mask is never empty."""
    noise = np.zeros(shape)
    for _ in range(MAX_TRIES):
        scales = (_draw_scale(shape[0], rng), _draw_scale(shape[1], rng))
        noise = perlin_noise(shape, scales, rng)
        noise = ndimage.rotate(noise, rng.uniform(*ROTATION_DEG), reshape=False, order=1, mode="constant", cval=0.0)
        mask = noise > THRESHOLD
        if mask.any():
            return mask
    mask = noise > np.quantile(noise, 0.9)
    return mask if mask.any() else noise >= noise.max()


def perlin_blend(image: np.ndarray, texture: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Blend `texture` into `image` inside a Perlin mask m with beta = U(0,1)*0.8:
    x_a = x(1-m) + (1-beta) tex m + beta x m, truncated to uint8 (DRAEM / OneNIP PerlinPaste).

    `texture` must be RGB of the image's size (the authors feed BGR DTD textures; that bug is not reproduced).
    Returns (uint8 HxWx3 image, non-empty bool HxW mask); pixels outside the mask are unchanged."""
    check_rgb(image)
    check_rgb(texture, "texture")
    if texture.shape != image.shape:
        raise ValueError(f"texture shape {texture.shape} must equal image shape {image.shape}")
    mask = perlin_mask(image.shape[:2], rng)
    beta = rng.uniform() * BETA_MAX
    m = mask[..., None]
    x = image.astype(np.float64)
    blended = x * (1 - m) + (1 - beta) * texture * m + beta * x * m
    return np.clip(blended, 0, 255).astype(np.uint8), mask
