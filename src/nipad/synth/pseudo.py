"""OneNIP's hybrid pseudo-anomaly generator for the restoration stream."""

import numpy as np

from nipad.errors import ConfigError
from nipad.synth.cutpaste import cutpaste_rect, cutpaste_scar
from nipad.synth.perlin import perlin_blend
from nipad.synth.texture_aug import augment_texture
from nipad.synth.textures import TextureSource


class PseudoAnomaly:
    """With probability `p_perlin` a Perlin blend of an augmented texture, otherwise CutPaste, rectangle or scar
    50/50 (the authors' "hybrid" style, p_perlin = 0.5). Call as `(image, rng) -> (image, mask)`."""

    def __init__(self, texture_source: TextureSource, p_perlin: float = 0.5) -> None:
        if not 0.0 <= p_perlin <= 1.0:
            raise ConfigError(f"p_perlin must be a probability in [0, 1], got {p_perlin}")
        self.texture_source = texture_source
        self.p_perlin = p_perlin

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A synthetic anomalous version of the uint8 HxWx3 `image` and its bool HxW mask (never empty for Perlin)."""
        if rng.random() < self.p_perlin:
            texture = augment_texture(self.texture_source.sample(rng, image.shape[:2]), rng)
            return perlin_blend(image, texture, rng)
        if rng.random() < 0.5:
            return cutpaste_rect(image, rng)
        return cutpaste_scar(image, rng)
