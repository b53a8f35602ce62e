"""A user's own folder (`good/` + one folder per defect type, optional masks, no test split) opens as a data set
with a fixed, seeded hold-out of normal images; the known layouts are still detected first."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nipad.data import ANOMALOUS, NORMAL, ClassCounts, detect_layout, open_dataset
from nipad.data.plain_folder import held_out_normals, read_plain
from nipad.errors import DataError


def make_plain(build, root: Path, good: int = 10, defects: dict[str, int] | None = None, normal: str = "good") -> Path:
    """`root/<normal>/n<i>.png` and `root/<type>/<type><i>.png`, without masks."""
    for i in range(good):
        build.image(root / normal / f"n{i:02d}.png")
    for kind, n in (defects or {}).items():
        for i in range(n):
            build.image(root / kind / f"{kind}{i}.png")
    return root


def test_good_and_bad_folders_open_with_counts_and_labels(tmp_path: Path, build) -> None:
    root = make_plain(build, tmp_path / "tiles", 10, {"bad": 2, "scratch": 1})
    assert detect_layout(root) == "folder"
    d = open_dataset(root)
    assert d.name == "folder" and d.classes == ["tiles"]
    assert d.summary() == {"tiles": ClassCounts(train=8, test_normal=2, test_anomalous=3, masks=0)}
    assert all(s.label == NORMAL and s.split == "train" and s.image_path.parent.name == "good" for s in d.train)
    assert {(s.image_path.parent.name, s.label, s.defect_type) for s in d.test} == {
        ("good", NORMAL, "good"), ("bad", ANOMALOUS, "bad"), ("scratch", ANOMALOUS, "scratch")}
    assert all(s.mask_path is None for s in d.test)
    text = d.describe()
    assert "tiles: bad 2 (0), scratch 1 (0)" in text
    assert "2 of 10 images in good/ held out as test normals" in text and "no masks" in text


def test_normal_folder_may_be_named_normal_or_ok(tmp_path: Path, build) -> None:
    for name in ("normal", "OK"):
        root = make_plain(build, tmp_path / name / "part", 5, {"defect": 1}, normal=name)
        assert open_dataset(root).summary() == {"part": ClassCounts(4, 1, 1, 0)}


def test_masks_are_paired_by_stem(tmp_path: Path, build) -> None:
    root = make_plain(build, tmp_path / "tiles", 5, {"bad": 2, "scratch": 1})
    build.mask(root / "masks/bad/bad0.png")
    build.mask(root / "masks/bad/bad1_mask.png")
    build.mask(root / "ground_truth/scratch/scratch0_mask.png")  # MVTec's naming
    d = open_dataset(root)
    assert {s.image_path.name: s.mask_path.relative_to(root).as_posix() for s in d.test if s.is_anomalous} == {
        "bad0.png": "masks/bad/bad0.png", "bad1.png": "masks/bad/bad1_mask.png",
        "scratch0.png": "ground_truth/scratch/scratch0_mask.png"}
    assert d.summary()["tiles"].masks == 3 and {s.defect_type for s in d.test} == {"good", "bad", "scratch"}
    assert "tiles: bad 2 (2), scratch 1 (1)" in d.describe()


def test_flat_mask_folder_and_partial_masks(tmp_path: Path, build) -> None:
    root = make_plain(build, tmp_path / "tiles", 5, {"bad": 2})
    build.mask(root / "masks/bad0.png")
    with pytest.raises(DataError, match=r"1 of the 2 defect images .*bad/bad1.png: expected .*tiles/masks/bad1.png"):
        open_dataset(root)
    build.mask(root / "masks/bad1_mask.png")
    assert open_dataset(root).summary()["tiles"].masks == 2


def test_hold_out_is_seeded_deterministic_and_disjoint(tmp_path: Path, build) -> None:
    root = make_plain(build, tmp_path / "a" / "tiles", 10, {"bad": 1})
    d = read_plain(root)
    assert read_plain(root) == d
    held = {s.image_path for s in d.test if not s.is_anomalous}
    trained = {s.image_path for s in d.train}
    assert held.isdisjoint(trained) and held | trained == set((root / "good").iterdir())
    copy = shutil.copytree(root, tmp_path / "elsewhere" / "tiles")  # same split wherever the folder lies
    assert {s.image_path.name for s in read_plain(copy).test} == {s.image_path.name for s in d.test}
    assert any(read_plain(root, seed=s).test != d.test for s in range(1, 6))
    images = sorted((root / "good").iterdir())
    assert held_out_normals(images[::-1]) == held_out_normals(images) == sorted(held)
    assert [len(held_out_normals(images[:n])) for n in (0, 1, 2, 3, 7, 8, 10)] == [0, 0, 1, 1, 1, 2, 2]
    assert len(held_out_normals(images, share=0.5)) == 5 and held_out_normals(images, share=0.0) == []


def test_one_normal_image_trains_and_the_note_says_so(tmp_path: Path, build) -> None:
    root = make_plain(build, tmp_path / "tiles", 1, {"bad": 1})
    d = open_dataset(root)
    assert d.summary() == {"tiles": ClassCounts(1, 0, 1, 0)}
    assert "none held out" in d.describe()


def test_folder_of_products_is_one_class_each(tmp_path: Path, build) -> None:
    root = tmp_path / "line"
    make_plain(build, root / "cap", 5, {"dent": 2})
    make_plain(build, root / "nut", 4)
    (root / "notes").mkdir()
    d = open_dataset(root)
    assert d.classes == ["cap", "nut"]
    assert d.summary() == {"cap": ClassCounts(4, 1, 2, 0), "nut": ClassCounts(3, 1, 0, 0)}
    text = d.describe()
    assert "nut: no defect images" in text and "not read (no good/, normal/ or ok/ inside): notes/" in text
    assert open_dataset(root, classes=["nut"]).classes == ["nut"]
    assert "cap:" not in open_dataset(root, classes=["nut"]).describe()


def test_mvtec_tree_is_still_read_as_mvtec(mvtec_root: Path, build) -> None:
    assert detect_layout(mvtec_root) == "mvtec" and detect_layout(mvtec_root / "bottle") == "mvtec"
    assert open_dataset(mvtec_root).summary()["bottle"] == ClassCounts(3, 2, 3, 3)
    make_plain(build, mvtec_root / "tiles", 3)
    mixed = r"mixes mvtec class folders \(bottle, cable\) with plain good/ folders \(tiles\)"
    with pytest.raises(DataError, match=mixed):
        open_dataset(mvtec_root)


def test_empty_or_wrong_folders_are_clear_errors(tmp_path: Path, build) -> None:
    (tmp_path / "empty_good" / "good").mkdir(parents=True)
    build.image(tmp_path / "empty_good" / "bad" / "x.png")
    with pytest.raises(DataError, match=r"no images in .*empty_good/good: expected the normal .*'empty_good'"):
        open_dataset(tmp_path / "empty_good")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match=r"nothing matches no known data set layout.*folder \(DIR/good/.*no good/"):
        open_dataset(tmp_path / "nothing")
    root = make_plain(build, tmp_path / "tiles", 3)
    with pytest.raises(DataError, match=r"is itself a normal-image folder.*folder above it, .*tiles"):
        open_dataset(root / "good")
    build.image(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match=r"holds 1 image\(s\) directly.*flat/good"):
        open_dataset(tmp_path / "flat")
    build.image(root / "normal" / "x.png")
    with pytest.raises(DataError, match=r"several normal-image folders \(good/, normal/\)"):
        open_dataset(root)
    shutil.rmtree(root / "normal")
    build.image(root / "test" / "x.png")
    with pytest.raises(DataError, match=r"both good/ and test/"):
        open_dataset(root)


def test_notes_survive_combining_two_folders(tmp_path: Path, build) -> None:
    from nipad.data import combine

    a = open_dataset(make_plain(build, tmp_path / "a" / "cap", 5, {"dent": 1}))
    b = open_dataset(make_plain(build, tmp_path / "b" / "nut", 5))
    text = combine([a, b]).describe()
    assert "cap: 1 of 5 images in good/ held out" in text and "nut: no defect images" in text
