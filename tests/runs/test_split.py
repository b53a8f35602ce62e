"""The calibration split: per class, disjoint, deterministic."""

from nipad.data import open_dataset
from nipad.runs.split import split_calibration


def test_split_calibration_holds_out_per_class_and_never_overlaps(tiny_mvtec):
    data = open_dataset(tiny_mvtec)
    train, held = split_calibration(data.train, 0.25, 0)
    assert {s.class_name for s in held} == {"stripes", "dots"}
    assert len(held) == 6 and not set(train) & set(held) and len(train) + len(held) == len(data.train)
    assert all(s.split == "train" for s in held)


def test_split_calibration_is_deterministic_and_keeps_small_classes_whole(tiny_mvtec):
    data = open_dataset(tiny_mvtec)
    assert split_calibration(data.train, 0.25, 7) == split_calibration(data.train, 0.25, 7)
    assert split_calibration(data.train, 0.25, 7)[1] != split_calibration(data.train, 0.25, 8)[1]
    few = [s for s in data.train if s.class_name == "dots"][:4]  # fewer than 5 images: none held out
    assert split_calibration(few, 0.5, 0) == (few, [])
    assert split_calibration(data.train, 0.0, 0) == (sorted(data.train, key=lambda s: s.class_name), [])
