"""Expanding the user's paths into image inputs: files, folders, globs, unique output names, the output folder left
out."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nipad.engine.image_inputs import find_images


def test_find_images_folders_globs_files_and_unique_names(images, monkeypatch):
    monkeypatch.chdir(images)
    found = find_images(["a", "b/*.png", "b/deep/x.bmp", "b"])
    paths = [str(f.path) for f in found]
    assert paths == ["a/notes.jpg", "a/part.png", "a/truncated.png", "b/part.png", "b/deep/x.bmp"]
    assert [f.relative.as_posix() for f in found] == paths  # common root "." mirrors the tree
    assert len({f.relative for f in found}) == len(found)
    (deep,) = find_images([str(images / "b/deep/*.bmp")])
    assert deep.relative == Path("x.bmp")
    assert [f.relative.as_posix() for f in find_images(["**/part.png"])] == ["a/part.png", "b/part.png"]


def test_outputs_are_named_by_stem_and_keep_the_suffix_only_where_two_inputs_share_a_stem(tmp_path):
    for name in ("lot/a.png", "lot/a.jpg", "lot/b.bmp"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / name)
    found = {f.relative.as_posix(): f.output_stem.as_posix() for f in find_images([str(tmp_path / "lot")])}
    assert found == {"a.jpg": "a.jpg", "a.png": "a.png", "b.bmp": "b"}


def test_find_images_warns_on_nothing_and_leaves_out_the_output_folder(images, tmp_path):
    with pytest.warns(UserWarning, match="no such file"):
        assert find_images([str(tmp_path / "nowhere")]) == []
    with pytest.warns(UserWarning, match="no image files"):
        assert find_images([str(images / "*.tif")]) == []
    (images / "out/heatmaps").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(images / "out/heatmaps/part.png")
    names = {f.relative.as_posix() for f in find_images([str(images)], exclude=images / "out")}
    assert "b/part.png" in names and not any(n.startswith("out/") for n in names)
