import shutil

import pytest


@pytest.fixture
def run(untrained_onenip_run, tmp_path):
    """A copy of the tiny untrained OneNIP run, for a test that may change or damage it."""
    copy = tmp_path / "run"
    shutil.copytree(untrained_onenip_run, copy)
    return copy
