"""Files named like images that are not: a FIFO named b.png must not hang `nipad predict`, and a 2 GB big.png that is
no image must be refused from its header, not read whole into memory first."""

import json
import os
import signal
import time
import tracemalloc
from contextlib import contextmanager

import pytest
from PIL import Image

from nipad.cli.main import main
from nipad.data.image_io import image_header_size, load_image
from nipad.engine.image_inputs import find_images
from nipad.errors import DataError


@contextmanager
def no_hang(seconds=60):
    def stop(*_):
        raise TimeoutError(f"still blocked after {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def folder(tmp_path, tiny_mvtec):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.open(tiny_mvtec / "stripes/test/good/000.png").save(folder / "a.png")
    os.mkfifo(folder / "b.png")
    with open(folder / "big.png", "wb") as fh:  # sparse: 2 GB that cost no disk
        fh.truncate(2 * 2**30)
    return folder


def test_a_fifo_in_a_folder_is_skipped_with_a_warning(folder):
    with no_hang(), pytest.warns(UserWarning, match=r"b.png: it is a FIFO \(named pipe\), not a regular file"):
        found = find_images([str(folder)])
    assert sorted(item.path.name for item in found) == ["a.png", "big.png"]
    with no_hang(), pytest.warns(UserWarning, match="FIFO"):
        assert find_images([str(folder / "b.png")]) == []
    with no_hang(), pytest.raises(DataError, match="FIFO"):
        load_image(folder / "b.png", 64)
    with no_hang():
        assert image_header_size(folder / "b.png") is None


def test_a_2gb_file_that_is_no_image_is_refused_quickly_with_little_memory(folder):
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(DataError, match="big.png: not an image"):
            load_image(folder / "big.png", 64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20 and time.monotonic() - started < 10


def test_predict_on_the_folder_finishes_with_the_image_and_skips_the_rest(folder, untrained_onenip_run, tmp_path):
    out = tmp_path / "out"
    with no_hang(120), pytest.warns(UserWarning) as warned:
        assert main(["predict", str(untrained_onenip_run), str(folder), "--out", str(out)]) == 0
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [os.path.basename(r["path"]) for r in rows] == ["a.png"]
    messages = [str(w.message) for w in warned]
    assert any("b.png: it is a FIFO" in m for m in messages)
    assert any("big.png: not an image" in m for m in messages)
