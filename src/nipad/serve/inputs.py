"""Uploaded files to model inputs, or a RequestError (HTTP status + message naming the file) saying what is wrong.

Dimensions are read from the header and checked against the limits BEFORE decoding, so a small file declaring a
huge image (a decompression bomb) costs nothing; the full decode then catches truncated and corrupt files.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image

from nipad.data import decode_image_bytes
from nipad.engine.predict import model_input
from nipad.errors import DataError
from nipad.serve.settings import ServeSettings


class RequestError(Exception):
    """A request the service refuses: `status` (4xx) and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def header_size(data: bytes, name: str) -> tuple[int, int]:
    """(width, height) from the image header; 415 if the bytes are no image format PIL knows."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                return img.size
    except Image.DecompressionBombError as err:
        raise RequestError(413, f"{name}: image dimensions too large ({err})") from err
    except Image.UnidentifiedImageError as err:
        raise RequestError(415, f"{name}: not an image (no known format: PNG, JPEG, BMP, TIFF ...)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise RequestError(400, f"{name}: unreadable image header ({err})") from err


def check_upload(data: bytes, name: str, settings: ServeSettings) -> tuple[int, int]:
    """Size and header checks of one uploaded file; its (width, height)."""
    if not data:
        raise RequestError(400, f"{name}: the file is empty (0 bytes)")
    if len(data) > settings.max_file_bytes:
        raise RequestError(413, f"{name}: {len(data)} bytes is over the limit of {settings.max_file_bytes} per file")
    width, height = header_size(data, name)
    if max(width, height) > settings.max_side or width * height > settings.max_pixels:
        raise RequestError(413, f"{name}: image of {width}x{height} pixels is over the limits ({settings.max_side} "
                                f"pixels a side, {settings.max_pixels} pixels in all)")
    return width, height


def check_request_pixels(sizes: list[tuple[int, int]], settings: ServeSettings) -> None:
    """413 if the images of one request hold more pixels in all than `max_request_pixels`."""
    total = sum(w * h for w, h in sizes)
    if total > settings.max_request_pixels:
        raise RequestError(413, f"the {len(sizes)} images hold {total} pixels in all, over the limit of "
                                f"{settings.max_request_pixels} per request: send fewer or smaller images per request")


def decode_upload(data: bytes, name: str, size: int | tuple[int, int] | None,
                  max_pixels: int | None = None) -> np.ndarray:
    """Fully decode a checked upload to uint8 HxWx3 RGB at `size` (None: its own); 400 if corrupt or truncated."""
    try:
        return decode_image_bytes(data, size, source=name, max_pixels=max_pixels)
    except DataError as err:
        raise RequestError(400, f"{name}: corrupt or truncated image ({err})") from err


def model_inputs(data: bytes, name: str, settings: ServeSettings, image_size: int,
                 keep_original: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The model input (uint8 3 x S x S, resized as training resized) and, with `keep_original`, the image at its
    own size (for maps and overlays), both from one decode."""
    check_upload(data, name, settings)
    if not keep_original:
        return decode_upload(data, name, image_size, settings.max_pixels).transpose(2, 0, 1), None
    original = decode_upload(data, name, None, settings.max_pixels)  # its own size, upright (EXIF orientation)
    return model_input(original, image_size), original
