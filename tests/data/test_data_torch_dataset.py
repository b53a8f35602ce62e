"""ImageDataset items and the skip-bad collate."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from nipad.data import ImageDataset, collate_skip_bad, open_dataset
from nipad.errors import DataError


def test_items_have_uint8_image_and_float_mask(mvtec_root: Path) -> None:
    d = open_dataset(mvtec_root)
    ds = ImageDataset(d.train + d.test, (4, 5))
    normal, anomalous = ds[0], ds[len(d.train) + 2]
    assert normal["image"].dtype == torch.uint8 and normal["image"].shape == (3, 4, 5)
    assert normal["mask"].dtype == torch.float32 and normal["mask"].shape == (1, 4, 5)
    assert normal["mask"].sum() == 0 and normal["label"] == 0 and normal["index"] == 0
    assert anomalous["label"] == 1 and anomalous["path"].endswith(".png")
    assert set(anomalous["mask"].unique().tolist()) == {0.0, 1.0}
    assert anomalous["mask"][0, :, :2].all() and not anomalous["mask"][0, :, 3:].any()


def test_bad_image_is_skipped_with_warning(mvtec_root: Path) -> None:
    d = open_dataset(mvtec_root, classes=["bottle"])
    bad = d.train[1].image_path
    bad.write_text("broken")
    ds = ImageDataset(d.train, 4)
    with pytest.warns(UserWarning, match=str(bad)):
        loader = DataLoader(ds, batch_size=3, collate_fn=collate_skip_bad)
        (batch,) = list(loader)
    assert batch["image"].shape == (2, 3, 4, 4) and batch["index"].tolist() == [0, 2]
    assert [p for p, _ in batch["skipped"]] == [str(bad)]
    assert "cannot decode" in batch["skipped"][0][1]


def test_all_bad_batch_is_empty(mvtec_root: Path) -> None:
    d = open_dataset(mvtec_root, classes=["cable"])
    for s in d.train:
        s.image_path.write_bytes(b"")
    with pytest.warns(UserWarning):
        batch = collate_skip_bad([ImageDataset(d.train, 4)[i] for i in range(2)])
    assert batch["image"].shape[0] == 0 and batch["path"] == [] and len(batch["skipped"]) == 2


def test_bad_image_raises_without_skip(mvtec_root: Path) -> None:
    d = open_dataset(mvtec_root, classes=["cable"])
    d.train[0].image_path.write_text("broken")
    with pytest.raises(DataError, match="000.png"):
        ImageDataset(d.train, 4, skip_bad=False)[0]
