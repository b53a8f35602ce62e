"""Data set readers: MVTec, VisA, BTAD and plain-folder layouts, detection and their errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nipad.data import ClassCounts, detect_layout, open_dataset, read_folder, select_classes
from nipad.data.sample import ANOMALOUS, NORMAL
from nipad.errors import ConfigError, DataError


def test_mvtec_counts_labels_and_masks(mvtec_root: Path) -> None:
    d = open_dataset(mvtec_root)
    assert d.name == "mvtec" and d.classes == ["bottle", "cable"]
    assert d.summary() == {"bottle": ClassCounts(3, 2, 3, 3), "cable": ClassCounts(2, 1, 1, 1)}
    crack = [s for s in d.test if s.defect_type == "crack"]
    assert [s.label for s in crack] == [ANOMALOUS]
    assert crack[0].mask_path == mvtec_root / "bottle/ground_truth/crack/000_mask.png"
    assert all(s.label == NORMAL and s.mask_path is None and s.split == "train" for s in d.train)
    assert all(s.split == "test" for s in d.test)
    assert "bottle" in d.describe() and "total" in d.describe()


def test_order_is_sorted_and_repeatable(mvtec_root: Path) -> None:
    a, b = open_dataset(mvtec_root), open_dataset(mvtec_root)
    assert a == b
    keys = [(s.class_name, s.defect_type, str(s.image_path)) for s in a.test]
    assert keys == sorted(keys)


def test_image_extensions_case_insensitive(tmp_path: Path, build) -> None:
    root = build.tree(tmp_path / "r", {"nut": {"train": 1, "good": 0}})
    for name in ("a.JPG", "b.jpeg", "c.BMP", "d.tif", "e.TIFF"):
        build.image(root / "nut/train/good" / name)
    (root / "nut/train/good/readme.txt").write_text("x")
    (root / "nut/train/good/.hidden.png").write_bytes(b"")
    assert open_dataset(root).summary()["nut"].train == 6


def test_single_class_folder(mvtec_root: Path) -> None:
    d = open_dataset(mvtec_root / "cable")
    assert d.classes == ["cable"] and d.summary()["cable"] == ClassCounts(2, 1, 1, 1)


def test_class_filter_and_unknown_class(mvtec_root: Path) -> None:
    assert open_dataset(mvtec_root, classes=["cable"]).classes == ["cable"]
    assert select_classes(open_dataset(mvtec_root), ["bottle"]).classes == ["bottle"]
    with pytest.raises(DataError, match="available classes: bottle, cable"):
        open_dataset(mvtec_root, classes=["cable", "screw"])


def test_no_ground_truth_folder_means_no_masks(tmp_path: Path, build) -> None:
    root = build.tree(tmp_path / "r", {"tile": {"train": 2, "good": 1, "crack": 2}}, masks=False)
    d = open_dataset(root)
    assert d.summary()["tile"] == ClassCounts(2, 1, 2, 0)
    assert all(s.mask_path is None for s in d.test)


def test_one_missing_mask_is_error(mvtec_root: Path) -> None:
    (mvtec_root / "bottle/ground_truth/broken/001_mask.png").unlink()
    with pytest.raises(DataError, match=r"test/broken/001.png.*ground_truth/broken/001_mask.png"):
        open_dataset(mvtec_root)


def test_class_without_ground_truth_when_others_have_it_is_error(mvtec_root: Path) -> None:
    shutil.rmtree(mvtec_root / "cable/ground_truth")
    with pytest.raises(DataError, match="cable/ground_truth/cut/000_mask.png"):
        open_dataset(mvtec_root)


def test_mask_size_mismatch_is_error(mvtec_root: Path, build) -> None:
    build.mask(mvtec_root / "cable/ground_truth/cut/000_mask.png", size=(5, 5))
    with pytest.raises(DataError, match=r"000_mask.png is 5x5 .* is 8x6"):
        open_dataset(mvtec_root)


def test_empty_class_is_error(mvtec_root: Path) -> None:
    for p in (mvtec_root / "cable/train/good").iterdir():
        p.unlink()
    with pytest.raises(DataError, match=r"'cable' has no training images.*cable/train/good"):
        open_dataset(mvtec_root)


def test_missing_folder_and_unknown_layout(tmp_path: Path, build) -> None:
    with pytest.raises(DataError, match="not found: .*nowhere"):
        open_dataset(tmp_path / "nowhere")
    build.image(tmp_path / "flat" / "a.png")
    with pytest.raises(DataError, match=r"no known data set layout; tried visa .*btad .*mvtec"):
        open_dataset(tmp_path / "flat")
    with pytest.raises(ConfigError, match="kind"):
        open_dataset(tmp_path / "flat", kind="kolektor")


def test_visa_split_csv(tmp_path: Path, build) -> None:
    root = build.visa(tmp_path / "VisA", {"candle": (3, 2, 2), "pcb1": (2, 1, 1)})
    assert detect_layout(root) == "visa"
    d = open_dataset(root)
    assert d.summary() == {"candle": ClassCounts(3, 2, 2, 2), "pcb1": ClassCounts(2, 1, 1, 1)}
    bad = [s for s in d.test if s.is_anomalous]
    assert bad[0].mask_path == root / "candle/Data/Masks/Anomaly/000.png" and bad[0].defect_type == "anomaly"
    assert open_dataset(root, classes=["pcb1"]).classes == ["pcb1"]


def test_visa_missing_file_and_bad_row(tmp_path: Path, build) -> None:
    root = build.visa(tmp_path / "VisA", {"candle": (2, 1, 1)})
    (root / "candle/Data/Masks/Anomaly/000.png").unlink()
    with pytest.raises(DataError, match="1 file.*Masks/Anomaly/000.png"):
        open_dataset(root)
    csv = root / "split_csv/1cls.csv"
    csv.write_text(csv.read_text().replace("test,anomaly", "test,defect"))
    with pytest.raises(DataError, match="line 5"):
        open_dataset(root)


def test_visa_object_with_only_test_rows_is_empty_class(tmp_path: Path, build) -> None:
    root = build.visa(tmp_path / "VisA", {"candle": (2, 1, 1), "fryum": (0, 1, 1)})
    with pytest.raises(DataError, match="'fryum' has no training images"):
        open_dataset(root)


def test_btad_layout(tmp_path: Path, build) -> None:
    root = tmp_path / "BTech"
    for cls, ext in (("01", ".png"), ("03", ".bmp")):
        build.tree(root, {cls: {"train": 2, "ok": 1}}, normal="ok")
        for i in range(2):
            build.image(root / cls / "test/ko" / f"{i:03d}.bmp")
            build.mask(root / cls / "ground_truth/ko" / f"{i:03d}{ext}")
    assert detect_layout(root) == "btad"
    d = open_dataset(root)
    assert d.name == "btad" and d.summary()["03"] == ClassCounts(2, 1, 2, 2)
    assert {s.mask_path.suffix for s in d.test if s.is_anomalous} == {".png", ".bmp"}
    assert {s.defect_type for s in d.test} == {"good", "ko"}


def test_folder_split_is_seeded_and_masks_match_by_stem(tmp_path: Path, build) -> None:
    for i in range(10):
        build.image(tmp_path / "widget/good" / f"n{i}.png")
    build.image(tmp_path / "widget/bad/a.png")
    build.image(tmp_path / "widget/bad/b.jpg")
    build.mask(tmp_path / "widget/masks/a.png")
    build.mask(tmp_path / "widget/masks/b_mask.png")
    kw = dict(abnormal_dir=tmp_path / "widget/bad", mask_dir=tmp_path / "widget/masks")
    d = read_folder(tmp_path / "widget/good", **kw)
    assert d.summary() == {"widget": ClassCounts(8, 2, 2, 2)}
    assert read_folder(tmp_path / "widget/good", **kw) == d
    other = [read_folder(tmp_path / "widget/good", **kw, seed=s).test for s in range(1, 6)]
    assert any(t != d.test for t in other)
    held = {s.image_path for s in d.test if not s.is_anomalous}
    assert held.isdisjoint(s.image_path for s in d.train)
    masks = {s.image_path.stem: s.mask_path.name for s in d.test if s.is_anomalous}
    assert masks == {"a": "a.png", "b": "b_mask.png"}


def test_folder_normal_only_and_errors(tmp_path: Path, build) -> None:
    for i in range(3):
        build.image(tmp_path / "good" / f"{i}.png")
    d = read_folder(tmp_path / "good", class_name="part")
    assert d.summary() == {"part": ClassCounts(3, 0, 0, 0)}
    build.image(tmp_path / "bad/x.png")
    (tmp_path / "masks").mkdir()
    with pytest.raises(DataError, match=r"bad/x.png.*masks/x.png.*masks/x_mask.png"):
        read_folder(tmp_path / "good", tmp_path / "bad", tmp_path / "masks")
    with pytest.raises(ConfigError):
        read_folder(tmp_path / "good", tmp_path / "bad", test_split=1.0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images in .*empty"):
        read_folder(tmp_path / "empty")


def test_folder_keeps_one_training_image(tmp_path: Path, build) -> None:
    build.image(tmp_path / "good/only.png")
    build.image(tmp_path / "bad/x.png")
    d = read_folder(tmp_path / "good", tmp_path / "bad", test_split=0.9)
    assert len(d.train) == 1 and d.summary()[d.classes[0]].test_normal == 0
