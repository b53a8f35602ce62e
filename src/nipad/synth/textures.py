"""Where Perlin-blend textures come from: a folder of texture images (e.g. DTD) or patches of training images."""

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image, UnidentifiedImageError

from nipad.errors import DataError
from nipad.synth._image import check_rgb, resize, to_array

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
PATCH_SIDE_RATIO = (0.25, 0.75)


@runtime_checkable
class TextureSource(Protocol):
    """Anything that can draw a texture: `sample(rng, (H, W))` returns a uint8 HxWx3 RGB array."""

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray: ...


class FolderTextures:
    """All images under `root`, searched recursively (DTD: point it at dtd/images, holding images/*/*.jpg).

    Images are read as RGB (the authors read DTD with cv2 and keep BGR; that is not reproduced)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(
                f"texture folder {self.root} does not exist; point it at a folder of texture images, "
                "e.g. the DTD data set's dtd/images (images/<category>/*.jpg)"
            )
        self.paths = sorted(p for p in self.root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise DataError(
                f"texture folder {self.root} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); expected "
                "texture images, e.g. DTD's images/<category>/*.jpg, or use image-bank textures instead"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        """A uniformly drawn texture image, resized (bilinear) to `size` = (H, W)."""
        path = self.paths[int(rng.integers(0, len(self.paths)))]
        try:
            with Image.open(path) as image:
                texture = to_array(image)
        except (OSError, UnidentifiedImageError) as error:
            raise DataError(f"texture image {path} cannot be read ({error}); remove or replace it") from error
        return resize(texture, size)


class ImageBankTextures:
    """Textures cut from training images, so no texture data set is needed.

    `images` is a sequence of uint8 HxWx3 arrays, or a callable `rng -> uint8 HxWx3 array` that returns a random
    training image (e.g. loading one from disk). A random square-ish patch (sides U(0.25, 0.75) of the source's)
    is rotated by a multiple of 90 degrees, maybe mirrored, and resized to the target size. Drawing the query
    image itself is possible but unlikely with many images; pass a callable to exclude it."""

    def __init__(self, images: Sequence[np.ndarray] | Callable[[np.random.Generator], np.ndarray]) -> None:
        if not callable(images) and len(images) == 0:
            raise DataError("image-bank textures need at least one training image, got an empty sequence")
        self.images = images

    def _draw_image(self, rng: np.random.Generator) -> np.ndarray:
        if callable(self.images):
            return self.images(rng)
        return self.images[int(rng.integers(0, len(self.images)))]

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        """A random patch of a random bank image, rotated/flipped and resized (bilinear) to `size` = (H, W)."""
        source = self._draw_image(rng)
        check_rgb(source, "image-bank image")
        height, width = source.shape[:2]
        patch_h = max(1, round(height * rng.uniform(*PATCH_SIDE_RATIO)))
        patch_w = max(1, round(width * rng.uniform(*PATCH_SIDE_RATIO)))
        top = int(rng.integers(0, height - patch_h + 1))
        left = int(rng.integers(0, width - patch_w + 1))
        patch = np.rot90(source[top : top + patch_h, left : left + patch_w], k=int(rng.integers(0, 4)))
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        return resize(np.ascontiguousarray(patch), size)
