"""combine (multi-data-set union with class-name clashes) and k-shot selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from nipad.data import combine, kshot, open_dataset
from nipad.data.sample import NORMAL
from nipad.errors import ConfigError, DataError


def test_combine_prefixes_only_clashing_classes(tmp_path: Path, build) -> None:
    mvtec = open_dataset(build.tree(tmp_path / "mvtec", {"bottle": {"train": 2}, "01": {"train": 1}}))
    btad = open_dataset(build.tree(tmp_path / "btad", {"01": {"train": 3}, "02": {"train": 1}}, normal="ok"))
    both = combine([mvtec, btad])
    assert both.classes == ["02", "bottle", "btad/01", "mvtec/01"]
    assert {c: n.train for c, n in both.summary().items()} == {"02": 1, "bottle": 2, "btad/01": 3, "mvtec/01": 1}
    assert both.name == "mvtec+btad" and both.root == tmp_path.resolve()
    assert all(s.image_path.is_relative_to(tmp_path / "btad/01") for s in both.train if s.class_name == "btad/01")
    assert combine([btad, mvtec]).train == both.train


def test_data_sets_of_one_layout_are_told_apart_by_their_folders(tmp_path: Path, build) -> None:
    a = open_dataset(build.tree(tmp_path / "a", {"bottle": {"train": 1}, "cap": {"train": 1}}))
    b = open_dataset(build.tree(tmp_path / "b", {"bottle": {"train": 1}}))
    both = combine([a, b])  # two MVTec-layout roots: their folder names, never "mvtec+mvtec" or a refusal
    assert both.classes == ["a/bottle", "b/bottle", "cap"] and both.name == "a+b"
    lots = [open_dataset(build.tree(tmp_path / lot / "tiles", {"bottle": {"train": 1}})) for lot in ("lot1", "lot2")]
    assert combine(lots).classes == ["lot1/bottle", "lot2/bottle"]  # same folder name: the folder that differs
    renamed = combine([a, open_dataset(tmp_path / "b", name="extra")])
    assert renamed.classes == ["cap", "extra/bottle", "mvtec/bottle"] and renamed.name == "mvtec+extra"
    with pytest.raises(DataError, match="more than once"):
        combine([a, open_dataset(tmp_path / "a")])
    with pytest.raises(DataError):
        combine([])


def _samples(tmp_path: Path, build):
    return open_dataset(build.tree(tmp_path / "k", {"a": {"train": 10, "good": 2, "bad": 1}, "b": {"train": 3}}))


def test_kshot_per_class_and_deterministic(tmp_path: Path, build) -> None:
    d = _samples(tmp_path, build)
    pick = kshot(d.train, 4, seed=7)
    assert [s.class_name for s in pick] == ["a"] * 4 + ["b"] * 3
    assert pick == kshot(d.train, 4, seed=7)
    assert set(pick) <= set(d.train)
    assert any(kshot(d.train, 4, seed=s) != pick for s in range(8))
    assert kshot(d.train, 100, seed=0) == d.train


def test_kshot_class_pick_independent_of_other_classes(tmp_path: Path, build) -> None:
    d = _samples(tmp_path, build)
    only_a = [s for s in d.train if s.class_name == "a"]
    assert kshot(only_a, 2, seed=3) == [s for s in kshot(d.train, 2, seed=3) if s.class_name == "a"]


def test_kshot_only_normals_and_k_check(tmp_path: Path, build) -> None:
    d = _samples(tmp_path, build)
    assert all(s.label == NORMAL for s in kshot(d.test, 5, seed=0))
    with pytest.raises(ConfigError):
        kshot(d.train, 0, seed=0)
