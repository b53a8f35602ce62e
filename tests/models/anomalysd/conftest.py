"""AnomalySD's model tests run on one torch thread (the tiny SD model, `tiny_sd`, is in tests/conftest.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    yield
