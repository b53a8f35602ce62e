"""The real magnetic-tile data set (MVTec layout) reads with the documented counts; skipped where ../shared is not
beside the repository (CI needs no real data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nipad.data import ClassCounts, open_dataset

# shared/ beside the repo
MAGNETIC_TILE = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "magnetic_tile"


@pytest.mark.skipif(not MAGNETIC_TILE.is_dir(), reason=f"real data not here: {MAGNETIC_TILE}")
def test_magnetic_tile_counts() -> None:
    d = open_dataset(MAGNETIC_TILE)
    assert d.classes == ["magnetic_tile"]
    assert d.summary() == {"magnetic_tile": ClassCounts(train=714, test_normal=238, test_anomalous=392, masks=392)}
    assert {s.defect_type for s in d.test if s.is_anomalous} == {"blowhole", "break", "crack", "fray", "uneven"}
    assert all(s.mask_path.is_file() for s in d.test if s.is_anomalous)
