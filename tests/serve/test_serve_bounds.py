"""Bounded work in the service: a request past its deadline or whose client has gone is cancelled (work not yet
started never runs), and a model that gives NaN answers 503 and makes /health say "broken" (uvicorn in a thread,
so the tests can slow the model down or break it)."""

import io
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from nipad.errors import ConfigError
from nipad.runs.checkpoint import load_detector, save_model
from nipad.serve.app import create_app
from nipad.serve.service import InspectionService
from nipad.serve.settings import ServeSettings

from live import serving


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _files(n: int):
    return [("files", (f"{i}.png", _png(i), "image/png")) for i in range(n)]


TOKEN = "bounds-write-token-0123456789"


@pytest.fixture
def live(untrained_onenip_run, tmp_path):
    """start(seconds_per_batch=0, **settings) -> (base URL, service, model calls started)."""
    run = tmp_path / "run"
    shutil.copytree(untrained_onenip_run, run)

    def start(seconds_per_batch: float = 0.0, **overrides):
        settings = ServeSettings(run_dir=run, threads=1, max_batch=1, max_wait_ms=0, **overrides)
        service = InspectionService(settings)
        started = []
        score = service.score

        def slow_score(images):
            started.append(time.monotonic())
            time.sleep(seconds_per_batch)
            return score(images)

        service.score = slow_score
        return stack.enter_context(serving(create_app(service))), service, started

    with ExitStack() as stack:
        yield start


def test_a_request_past_its_deadline_is_cancelled(live):
    base, _, started = live(seconds_per_batch=0.6, request_timeout_s=1.0)
    t0 = time.monotonic()
    response = httpx.post(f"{base}/predict", files=_files(4), timeout=30)
    assert response.status_code == 504 and "longer than 1 s" in response.json()["error"]
    assert time.monotonic() - t0 < 2.0
    time.sleep(1.5)  # the batches still queued would have run by now
    assert len(started) <= 2  # 4 model batches of 0.6 s were queued; those after the deadline never ran
    assert httpx.get(f"{base}/health").json()["status"] == "ok"


def test_a_client_that_disconnects_cancels_its_work(live):
    base, _, started = live(seconds_per_batch=0.5, request_timeout_s=60)
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{base}/predict", files=_files(8), timeout=httpx.Timeout(30, read=0.7))
    time.sleep(2.5)  # all 8 batches would have run by 4 s; 2.5 s after the client left, at most ~2 started
    assert len(started) <= 3
    ok = httpx.post(f"{base}/predict", files=_files(1), timeout=30)
    assert ok.status_code == 200


def test_a_model_giving_nan_is_a_503_and_health_says_broken(live):
    base, service, _ = live()
    assert httpx.post(f"{base}/predict", files=_files(1), timeout=30).status_code == 200
    with torch.no_grad():  # broken in memory, past the load-time checks
        next(service.snapshot.model.net.parameters()).fill_(float("nan"))
    response = httpx.post(f"{base}/predict", files=_files(2), timeout=30)
    assert response.status_code == 503 and "NaN" in response.json()["error"]
    assert "pred_score" not in response.text
    health = httpx.get(f"{base}/health")
    assert health.status_code == 503 and health.json()["status"] == "broken" and "NaN" in health.json()["problem"]


def test_without_a_configured_token_writes_are_off_with_a_message_and_reads_work(live):
    base, service, _ = live()
    before = {p.name: p.read_bytes() for p in service.settings.run_dir.iterdir() if p.is_file()}
    response = httpx.post(f"{base}/prompts/NEW", files=_files(1), timeout=60,
                          headers={"Authorization": "Bearer anything-at-all-0123"})
    assert response.status_code == 403 and "--token-file" in response.json()["error"]
    assert {p.name: p.read_bytes() for p in service.settings.run_dir.iterdir() if p.is_file()} == before
    assert httpx.post(f"{base}/predict", files=_files(1), timeout=30).status_code == 200


def test_the_token_is_never_in_the_settings_repr():
    settings = ServeSettings(run_dir=Path("run"), write_token="s3cret-token-0123456789")
    assert "s3cret" not in repr(settings)
    with pytest.raises(ConfigError, match="at least 16 characters"):
        ServeSettings(run_dir=Path("run"), write_token="short")


def test_a_prompt_update_never_writes_nan_thresholds(live):
    base, service, _ = live(write_token=TOKEN)
    run = service.settings.run_dir
    detector, info = load_detector(run)
    with torch.no_grad():
        for param in list(detector.net.parameters())[:3]:
            param.fill_(float("nan"))
    save_model(run, detector, info)  # the run on disk diverged after the service loaded it
    calibration = (run / "calibration.json").read_bytes()
    response = httpx.post(f"{base}/prompts/NEW", files=_files(3), timeout=60,
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 409 and "NaN or infinite" in response.json()["error"]
    assert (run / "calibration.json").read_bytes() == calibration
    assert httpx.post(f"{base}/predict", files=_files(1), timeout=30).status_code == 200  # the old snapshot serves on
