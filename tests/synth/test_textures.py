import numpy as np
import pytest
from PIL import Image

from nipad.errors import DataError
from nipad.synth import FolderTextures, ImageBankTextures, TextureSource


def _write(path, colour, size=(20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def test_folder_textures_finds_images_recursively_and_resizes(tmp_path):
    _write(tmp_path / "images" / "banded" / "a.jpg", (255, 0, 0))
    _write(tmp_path / "images" / "dotted" / "b.png", (0, 0, 255))
    (tmp_path / "images" / "labels.txt").write_text("not an image")
    source = FolderTextures(tmp_path / "images")
    assert isinstance(source, TextureSource) and len(source) == 2
    rng = np.random.default_rng(0)
    reds = 0
    for _ in range(20):
        tex = source.sample(rng, (17, 23))
        assert tex.dtype == np.uint8 and tex.shape == (17, 23, 3)
        reds += int(tex[..., 0].mean() > tex[..., 2].mean())
    assert 0 < reds < 20


def test_folder_textures_are_rgb_not_bgr(tmp_path):
    _write(tmp_path / "red.png", (250, 10, 10))
    tex = FolderTextures(tmp_path).sample(np.random.default_rng(0), (8, 8))
    assert (tex[..., 0] > 200).all() and (tex[..., 2] < 50).all()


def test_folder_textures_missing_folder(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*DTD"):
        FolderTextures(tmp_path / "dtd" / "images")


def test_folder_textures_empty_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match=str(tmp_path).replace("\\", "\\\\") + r".*no images"):
        FolderTextures(tmp_path)


def test_folder_textures_unreadable_image(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        FolderTextures(tmp_path).sample(np.random.default_rng(0), (8, 8))


def test_image_bank_cuts_patches_of_the_given_images():
    red = np.zeros((40, 60, 3), dtype=np.uint8)
    red[..., 0] = 255
    blue = np.zeros((50, 50, 3), dtype=np.uint8)
    blue[..., 2] = 255
    source = ImageBankTextures([red, blue])
    assert isinstance(source, TextureSource)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(20):
        tex = source.sample(rng, (32, 24))
        assert tex.shape == (32, 24, 3) and tex.dtype == np.uint8
        assert len(np.unique(tex.reshape(-1, 3), axis=0)) == 1
        seen.add(tuple(tex[0, 0]))
    assert seen == {(255, 0, 0), (0, 0, 255)}


def test_image_bank_patch_is_a_part_of_the_source():
    # Left half black, right half white: a patch of at most 75% of the width is rarely both; over many draws
    # some patches must be pure black or pure white, which a full-image resize never is.
    image = np.zeros((64, 64, 3), dtype=np.uint8)
    image[:, 32:] = 255
    rng = np.random.default_rng(1)
    means = [ImageBankTextures([image]).sample(rng, (16, 16)).mean() for _ in range(30)]
    assert min(means) < 10 or max(means) > 245
    assert len({round(m) for m in means}) > 3


def test_image_bank_accepts_a_callable():
    calls = []

    def draw(rng):
        calls.append(1)
        return np.full((30, 30, 3), int(rng.integers(0, 256)), dtype=np.uint8)

    tex = ImageBankTextures(draw).sample(np.random.default_rng(0), (10, 12))
    assert tex.shape == (10, 12, 3) and len(calls) == 1


def test_image_bank_errors():
    with pytest.raises(DataError, match="at least one"):
        ImageBankTextures([])
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        ImageBankTextures([np.zeros((8, 8), dtype=np.float32)]).sample(np.random.default_rng(0), (4, 4))
