"""The input-size rule of the models on a stride-16 backbone (OneNIP, UniAD, PatchCore, PaDiM, kNN), written once."""

from nipad.errors import ConfigError

STRIDE = 16  # the backbone's coarsest feature stride: an image side must be a multiple of it
MIN_SIZE = 64


def check_image_size(size: int) -> int:
    """`size` if these models take it, else a ConfigError that states the rule."""
    if size % STRIDE or size < MIN_SIZE:
        raise ConfigError(f"--image-size must be a multiple of {STRIDE} and >= {MIN_SIZE}, got {size}")
    return size
