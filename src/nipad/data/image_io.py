"""Image and mask loading: any PIL mode to uint8 RGB, masks to bool, both resized to the model's input size.

Files are fully decoded so that truncated or non-image files fail here, as a DataError naming the file, rather than
deep inside training. A file is opened without blocking and must be a regular file (a FIFO named b.png would block
forever), and its header is read first, never the whole file: a 2 GB file that is not an image is refused after a
few bytes. With `max_pixels`, an image whose header declares more pixels is refused before any pixel is decoded (a
small file can declare a huge image); PIL's own decompression-bomb limit is the backstop. Images with transparency
are alpha-composited on black (transparent pixels become black, whatever colour they store). An image is turned as
its EXIF orientation says (`upright`), in training, predict and serve alike.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from nipad.errors import ConfigError, DataError

ImageSize = int | tuple[int, int]
MAX_PIXELS = 40_000_000  # default decoded-pixel budget per image of predict and prompt add, as `nipad serve`'s

_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_LABEL_ID_MAX = 128


def as_hw(size: ImageSize) -> tuple[int, int]:
    """`size` as (height, width): an int means a square; a tuple is (height, width), like the arrays returned."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, int) and v > 0 for v in hw):
        raise ConfigError(f"image size {size!r} is invalid. Fix: give a positive int or a (height, width) pair.")
    return hw


def load_image(path: str | Path, size: ImageSize | None, max_pixels: int | None = None) -> np.ndarray:
    """The image at `path` as uint8 HxWx3 RGB, resized bilinearly (antialiased when shrinking) to `size` (None: its
    own size); DataError if it declares more than `max_pixels` pixels."""
    with open_image_file(path) as fh:
        return _as_array(_decode(fh, str(path), max_pixels), size, str(path))


def decode_image_bytes(data: bytes, size: ImageSize | None, source: str = "<bytes>",
                       max_pixels: int | None = None) -> np.ndarray:
    """Encoded image bytes (PNG, JPEG, ...) as uint8 HxWx3 RGB resized to `size` (None: as they are); `source` names
    them in errors; DataError if the header declares more than `max_pixels` pixels (checked before decoding)."""
    return _as_array(_decode(io.BytesIO(data), source, max_pixels), size, source)


def _as_array(img: Image.Image, size: ImageSize | None, source: str) -> np.ndarray:
    h, w = as_hw(size) if size is not None else img.size[::-1]
    rgb = to_rgb8(img, source)
    if rgb.size != (w, h):
        rgb = rgb.resize((w, h), Image.Resampling.BILINEAR)
    return np.array(rgb, dtype=np.uint8)


def load_mask(path: str | Path, size: ImageSize) -> np.ndarray:
    """The mask at `path` as bool HxW, binarised (see `binarise_mask`) then resized with NEAREST to `size`."""
    h, w = as_hw(size)
    with open_image_file(path) as fh:
        img = _decode(fh, str(path))
        mask = Image.fromarray(binarise_mask(mask_values(img, str(path))).astype(np.uint8) * 255, mode="L")
    if mask.size != (w, h):
        mask = mask.resize((w, h), Image.Resampling.NEAREST)
    return np.asarray(mask) > 127


def image_header_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) read from the file header without decoding pixels; None if the header cannot be read or
    declares an image beyond PIL's decompression-bomb limit."""
    try:
        with open_image_file(path) as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fh) as img:
                return img.size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, DataError):
        return None


def to_rgb8(img: Image.Image, source: str = "<image>") -> Image.Image:
    """`img` in mode RGB: 16-bit grey scaled by 65535, transparency composited on black, other modes via PIL."""
    if img.mode in _SIXTEEN_BIT_MODES:
        grey = np.clip(np.asarray(img, dtype=np.float64), 0, 65535) / 65535.0 * 255.0
        return Image.fromarray(np.round(grey).astype(np.uint8), mode="L").convert("RGB")
    try:
        if "A" in img.getbands() or "a" in img.getbands() or "transparency" in img.info:
            rgba = img.convert("RGBA")
            black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            return Image.alpha_composite(black, rgba).convert("RGB")
        return img.convert("RGB")
    except ValueError as err:
        raise DataError(f"cannot convert image {source} (mode {img.mode}) to RGB: {err}. Fix: save it as RGB.") from err


def mask_values(img: Image.Image, source: str = "<mask>") -> np.ndarray:
    """Mask pixel values as a float HxW array: single-band masks as stored (palette masks as indices), colour masks
    as the per-pixel max over RGB."""
    if len(img.getbands()) == 1:
        return np.asarray(img, dtype=np.float64)
    return np.asarray(to_rgb8(img, source), dtype=np.float64).max(axis=2)


def binarise_mask(values: np.ndarray) -> np.ndarray:
    """Foreground = values > 0.5 * max; an all-zero mask stays all False.

    Integer masks whose max is below 128 are label-id masks (raw VisA stores defect-class ids 1..N, several per image),
    so there every non-zero value is foreground: halving their max would drop the lower ids.
    """
    top = float(values.max()) if values.size else 0.0
    if top <= 0:
        return np.zeros(values.shape, dtype=bool)
    is_label_ids = top < _LABEL_ID_MAX and bool(np.all(values == np.round(values)))
    return values > (0.0 if is_label_ids else 0.5 * top)


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def file_kind(mode: int) -> str | None:
    """None for a regular file, else what it is in words ("a FIFO (named pipe)", "a folder", ...)."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def open_image_file(path: str | Path) -> BinaryIO:
    """`path` opened for reading, without blocking (a FIFO's open would wait for a writer forever); DataError unless
    it is a readable regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise DataError(f"cannot read image file {path}: {err.strerror or err}. Fix: check the path exists "
                        f"and is a readable file.") from err
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind is not None:
            raise DataError(f"cannot read image file {path}: it is {kind}, not a regular file. Fix: pass image files")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _decode(data: BinaryIO, source: str, max_pixels: int | None = None) -> Image.Image:
    """Open the stream `data` (PIL reads only the header), check its declared size against `max_pixels`, then
    decode it fully (PIL's lazy open alone would not notice truncation)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit speaks first
            img = Image.open(data)
    except Image.DecompressionBombError as err:
        raise DataError(f"image {source} is too large to decode: {err} Fix: shrink the image") from err
    except Image.UnidentifiedImageError as err:
        raise DataError(f"cannot decode image {source}: not an image in a format PIL reads (PNG, JPEG, BMP, TIFF ...)."
                        f" Fix: replace or remove it.") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(f"cannot decode image {source}: unreadable header ({err}). Fix: replace or remove it.") from err
    width, height = img.size
    if max_pixels is not None and width * height > max_pixels:
        raise DataError(f"image {source} is {width}x{height} = {width * height} pixels, over the limit of {max_pixels} "
                        f"(--max-pixels). Fix: shrink the image, or raise --max-pixels if the memory allows")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot decode image {source}: {err}. Fix: the file is truncated or corrupt; "
                        f"replace or remove it.") from err
    return upright(img)


_ORIENTATION = 0x0112  # the EXIF tag


def upright(img: Image.Image) -> Image.Image:
    """`img` turned as its EXIF orientation says it is shown (a phone or camera photo stored sideways), as every
    viewer shows it; unchanged when it has no orientation, orientation 1, or EXIF that cannot be read."""
    try:
        orientation = img.getexif().get(_ORIENTATION, 1)
    except Exception:  # malformed EXIF (PIL raises several types): the pixels as stored
        return img
    if orientation == 1:
        return img
    try:
        return ImageOps.exif_transpose(img)
    except Exception:
        return img
