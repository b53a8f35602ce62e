"""Image and mask loading: every PIL mode, resizing, binarisation, and bad files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nipad.data.image_io import decode_image_bytes, load_image, load_mask
from nipad.errors import ConfigError, DataError


def _save(img: Image.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def test_rgb_at_native_size_is_exact(tmp_path: Path) -> None:
    a = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    out = load_image(_save(Image.fromarray(a), tmp_path / "x.png"), (5, 7))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, a)


def test_size_tuple_is_height_width_and_int_is_square(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (20, 10), (1, 2, 3)), tmp_path / "x.png")
    assert load_image(path, (4, 9)).shape == (4, 9, 3)
    assert load_image(path, 6).shape == (6, 6, 3)


def test_downscale_is_antialiased_bilinear(tmp_path: Path) -> None:
    """A 1-px checkerboard shrunk 4x averages to mid grey; a non-antialiased resize would keep 0s and 255s."""
    board = (np.indices((16, 16)).sum(0) % 2 * 255).astype(np.uint8)
    out = load_image(_save(Image.fromarray(board), tmp_path / "c.png"), 4)
    assert np.all(np.abs(out.astype(int) - 128) <= 2)


@pytest.mark.parametrize("mode, value, expected", [
    ("L", 77, (77, 77, 77)),
    ("1", 1, (255, 255, 255)),
    ("RGB", (10, 20, 30), (10, 20, 30)),
    ("RGBA", (10, 20, 30, 255), (10, 20, 30)),
    ("LA", (90, 255), (90, 90, 90)),
])
def test_modes_convert_to_rgb(tmp_path: Path, mode: str, value, expected) -> None:
    out = load_image(_save(Image.new(mode, (3, 2), value), tmp_path / "m.png"), (2, 3))
    assert np.all(out == np.array(expected, np.uint8))


def test_transparency_is_composited_on_black(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[0, :, 3] = 0
    rgba[1, :, 3] = 255
    out = load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"), 2)
    np.testing.assert_array_equal(out[0], 0)
    np.testing.assert_array_equal(out[1], [[200, 100, 50]] * 2)
    la = load_image(_save(Image.new("LA", (2, 2), (90, 0)), tmp_path / "la.png"), 2)
    assert np.all(la == 0)


def test_palette_with_and_without_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1), 1)
    img.putpalette([0, 0, 0, 10, 200, 30])
    img.putpixel((0, 0), 1)
    assert np.all(load_image(_save(img, tmp_path / "p.png"), (1, 2)) == (10, 200, 30))
    out = load_image(_save(img, tmp_path / "pt.png", transparency=1), (1, 2))
    assert np.all(out == 0)


@pytest.mark.parametrize("dtype, suffix", [(np.uint16, ".png"), (np.uint16, ".tif"), (np.int32, ".tif")])
def test_sixteen_bit_scaled_by_type_max(tmp_path: Path, dtype, suffix: str) -> None:
    a = np.array([[0, 32768, 65535]], dtype=dtype)
    path = _save(Image.fromarray(a), tmp_path / f"g{suffix}")
    with Image.open(path) as img:
        assert img.mode in ("I;16", "I")
    out = load_image(path, (1, 3))
    np.testing.assert_array_equal(out[..., 0], [[0, 128, 255]])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_cmyk_jpeg(tmp_path: Path) -> None:
    out = load_image(_save(Image.new("CMYK", (4, 4), (0, 0, 0, 0)), tmp_path / "c.jpg"), 4)
    assert np.all(out >= 250)


def test_decode_bytes_matches_file(tmp_path: Path) -> None:
    a = np.random.default_rng(1).integers(0, 256, (9, 9, 3), dtype=np.uint8)
    path = _save(Image.fromarray(a), tmp_path / "x.png")
    np.testing.assert_array_equal(decode_image_bytes(path.read_bytes(), 5), load_image(path, 5))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_is_data_error(tmp_path: Path, fmt: str) -> None:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with Image.open(path) as img:  # the header alone still parses: only a full decode finds the damage
        assert img.size == (64, 64)
    with pytest.raises(DataError, match="cut"):
        load_image(path, 8)


def test_text_file_named_png_is_data_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image")
    with pytest.raises(DataError, match="notes.png"):
        load_image(path, 8)
    with pytest.raises(DataError, match="notes.png"):
        load_mask(path, 8)


def test_missing_file_and_bad_bytes(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nothere.png"):
        load_image(tmp_path / "nothere.png", 8)
    with pytest.raises(DataError, match="upload.jpg"):
        decode_image_bytes(b"\x00garbage", 8, source="upload.jpg")


def test_invalid_size_is_config_error(tmp_path: Path) -> None:
    path = _save(Image.new("RGB", (2, 2)), tmp_path / "x.png")
    for bad in (0, (4,), (4, -1), (2.5, 3)):
        with pytest.raises(ConfigError):
            load_image(path, bad)


@pytest.mark.parametrize("top", [1, 255])
def test_mask_two_level_binarised(tmp_path: Path, top: int) -> None:
    a = np.zeros((4, 6), np.uint8)
    a[1:3, 2:5] = top
    out = load_mask(_save(Image.fromarray(a), tmp_path / "m.png"), (4, 6))
    assert out.dtype == bool
    np.testing.assert_array_equal(out, a > 0)


def test_mask_half_max_threshold_drops_low_noise(tmp_path: Path) -> None:
    a = np.array([[0, 3, 99, 100, 101, 200]], np.uint8)  # threshold 0.5 * 200
    out = load_mask(_save(Image.fromarray(a), tmp_path / "m.png"), (1, 6))
    np.testing.assert_array_equal(out, [[False, False, False, False, True, True]])


def test_mask_label_ids_all_foreground(tmp_path: Path) -> None:
    """Raw VisA masks store defect-class ids; every non-zero id is a defect pixel."""
    a = np.array([[0, 1, 2, 5]], np.uint8)
    out = load_mask(_save(Image.fromarray(a), tmp_path / "m.png"), (1, 4))
    np.testing.assert_array_equal(out, [[False, True, True, True]])


def test_mask_all_zero_stays_false(tmp_path: Path) -> None:
    out = load_mask(_save(Image.new("L", (5, 5), 0), tmp_path / "m.png"), 3)
    assert out.shape == (3, 3) and not out.any()


def test_mask_colour_and_nearest_resize(tmp_path: Path) -> None:
    a = np.zeros((2, 2, 3), np.uint8)
    a[0, 0] = (255, 0, 0)
    out = load_mask(_save(Image.fromarray(a), tmp_path / "m.png"), 4)
    expected = np.zeros((4, 4), bool)
    expected[:2, :2] = True
    np.testing.assert_array_equal(out, expected)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = (np.arange(2 * 4 * 3, dtype=np.uint8) * 10).reshape(2, 4, 3)  # 4 wide, 2 high, as the camera stored it
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation 6: shown turned 90 degrees clockwise
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    shown = np.rot90(stored, k=-1)  # 2 wide, 4 high
    assert np.array_equal(load_image(tmp_path / "phone.png", None), shown)
    assert np.array_equal(decode_image_bytes((tmp_path / "phone.png").read_bytes(), None), shown)
    assert load_image(tmp_path / "phone.png", (8, 4)).shape == (8, 4, 3)
