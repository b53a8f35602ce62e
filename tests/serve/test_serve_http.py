"""The real service on loopback (uvicorn in a subprocess, a free port), spoken to over HTTP with httpx: predictions
match the in-process model, concurrent requests are batched, bad input is a 4xx JSON that never takes the service
down, and prompt updates add a class or, when they fail, leave the pool and the run files as they were."""

import base64
import hashlib
import io
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from nipad.cli.main import main
from nipad.data import load_image
from nipad.engine.calibration import Calibration, above
from nipad.engine.predict import ImageInput, predict
from nipad.runs.checkpoint import load_detector

TOKEN = "test-write-token-0123456789"
WRITE = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(untrained_onenip_run, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    run = root / "run"
    shutil.copytree(untrained_onenip_run, run)
    port = _free_port()
    log_path = root / "server.log"
    (root / "token").write_text(TOKEN + "\n")
    cmd = [sys.executable, "-m", "nipad.cli.main", "serve", str(run), "--port", str(port), "--threads", "1",
           "--token-file", str(root / "token"),
           "--max-batch", "8", "--max-wait-ms", "100", "--max-files", "4", "--max-side", "1000", "--max-file-mb", "1",
           "--max-request-pixels", "1500000", "--log-level", "warning"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "NIPAD_CACHE": str(root / "cache")})
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"server did not start in 120 s:\n{log_path.read_text()}")
        time.sleep(0.3)
    client = httpx.Client(base_url=base, timeout=120)
    yield SimpleNamespace(client=client, run=run, base=base, port=port)
    client.close()
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _files(*items):
    return [("files", (name, data, "application/octet-stream")) for name, data in items]


def _checkerboard(seed: int, size: int = 80) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    board = np.where(((yy // 8) + (xx // 8)) % 2 == 0, 200.0, 60.0)[..., None] + rng.normal(0, 5, (size, size, 3))
    return np.clip(board, 0, 255).astype(np.uint8)


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def _huge_header_png(side: int = 5000) -> bytes:
    """A valid 8x8 PNG whose header claims side x side pixels (CRC fixed, so only the size is a lie)."""
    data = bytearray(_png(np.zeros((8, 8, 3), np.uint8)))
    ihdr = bytearray(data[12:29])  # b"IHDR" + 13 bytes
    ihdr[4:12] = struct.pack(">II", side, side)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def test_health_and_classes(server):
    health = server.client.get("/health").json()
    assert health["model_loaded"] and health["device"] == "cpu" and health["image_size"] == 64
    classes = {c["name"]: c for c in server.client.get("/classes").json()["classes"]}
    assert set(classes) == {"dots", "stripes"} and all(c["calibrated"] and c["prompts"] == 1 for c in classes.values())


def test_predictions_match_the_in_process_model(server, untrained_onenip_run, tiny_mvtec):
    paths = [tiny_mvtec / "dots/test/blob/000.png", tiny_mvtec / "stripes/test/good/001.png"]
    response = server.client.post("/predict", files=_files(*((p.name, p.read_bytes()) for p in paths)))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    detector, _ = load_detector(untrained_onenip_run)
    calibration = Calibration.load(untrained_onenip_run)
    ref = detector(torch.stack([torch.from_numpy(load_image(p, 64)).permute(2, 0, 1) for p in paths]))
    assert [r["class"] for r in results] == ref["prompt_class"] == ["dots", "stripes"]
    for r, score, cls in zip(results, ref["pred_score"].tolist(), ref["prompt_class"], strict=True):
        assert r["pred_score"] == pytest.approx(score, abs=1e-3)
        assert r["threshold_class"] == cls
        t = calibration.classes[cls]
        assert r["pred_label"] == bool(above(np.float64(r["pred_score"]), t.image_threshold))
        # anomalib's min-max normalisation, the threshold at 0.5
        expected = (r["pred_score"] - t.image_threshold) / max(t.image_max - t.image_min, 1e-12) + 0.5
        assert r["pred_score_normalized"] == pytest.approx(min(max(expected, 0.0), 1.0), abs=1e-6)


def test_maps_and_overlays_come_at_the_image_size(server, tmp_path):
    image = _checkerboard(0, 96)[:, :80]
    response = server.client.post("/predict?maps=true&overlay=true", files=_files(("board.png", _png(image))))
    result = response.json()["results"][0]
    anomaly_map = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["anomaly_map_png"]))))
    overlay = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["overlay_png"]))))
    assert anomaly_map.shape == (96, 80) and overlay.shape == (96, 80, 3)
    (tmp_path / "board.png").write_bytes(_png(image))  # the same image through `nipad predict`'s code
    detector, _ = load_detector(server.run)
    [local] = predict(detector, Calibration.load(server.run), [ImageInput(tmp_path / "board.png", Path("board.png"))])
    assert result["defect_area_fraction"] == pytest.approx(float(local.pred_mask.mean()), abs=0.01)


def test_concurrent_requests_are_batched(server, tiny_mvtec):
    images = [*sorted((tiny_mvtec / "stripes/test/good").glob("*.png")),
              *sorted((tiny_mvtec / "dots/test/blob").glob("*.png"))]
    before = _metric(server.client.get("/metrics").text, "nipad_batch_size_count")

    def one(path):
        return server.client.post("/predict", files=_files((path.name, path.read_bytes())))

    with ThreadPoolExecutor(len(images)) as pool:
        responses = list(pool.map(one, images))
    assert all(r.status_code == 200 for r in responses)
    batches = _metric(server.client.get("/metrics").text, "nipad_batch_size_count") - before
    assert batches < len(images)  # at least two requests shared a model batch
    serial = one(images[0]).json()["results"][0]["pred_score"]
    assert responses[0].json()["results"][0]["pred_score"] == pytest.approx(serial, abs=1e-3)


@pytest.mark.parametrize(("files", "query", "status", "message"), [
    ([("notes.txt", b"just some text")], "", 415, "not an image"),
    ([("empty.png", b"")], "", 400, "empty (0 bytes)"),
    ([("cut.png", _png(np.full((64, 64, 3), 7, np.uint8))[:80])], "", 400, "corrupt or truncated"),
    ([("bomb.png", _huge_header_png())], "", 413, "5000x5000"),
    ([("big.png", bytes(1_500_000))], "", 413, "over the limit"),
    ([(f"{i}.png", _png(np.zeros((8, 8, 3), np.uint8))) for i in range(5)], "", 413, "too many files"),
    ([("ok.png", _png(np.zeros((8, 8, 3), np.uint8)))], "?class=nope", 404, "unknown class 'nope'"),
    ([("a.png", _huge_header_png(1000)), ("b.png", _huge_header_png(1000))], "", 413, "2000000 pixels in all"),
])
def test_bad_input_is_a_4xx_json_and_the_service_goes_on(server, files, query, status, message):
    response = server.client.post(f"/predict{query}", files=_files(*files))
    assert response.status_code == status
    body = response.json()
    assert body["status"] == status and message in body["error"]
    good = server.client.post("/predict", files=_files(("ok.png", _png(_checkerboard(1)))))
    assert good.status_code == 200


def _chunked_upload(port: int, total: int, chunk: int = 2**16) -> tuple[str, int]:
    """POST /predict one file part of `total` zero bytes with Transfer-Encoding: chunked (no Content-Length), as fast
    as the server takes it; (response text, bytes sent when the response came or the connection closed)."""
    boundary = "nipadboundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="stream.png"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: "
                     f"multipart/form-data; boundary={boundary}\r\n\r\n".encode())
        sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        block = b"%x\r\n%s\r\n" % (chunk, bytes(chunk))
        try:
            while sent < total:
                if select.select([sock], [], [], 0)[0]:  # the server answered before the body ended
                    break
                sock.sendall(block)
                sent += chunk
        except (BrokenPipeError, ConnectionResetError):
            pass
        response = b""
        try:
            while b"\r\n\r\n" not in response or not response.rstrip().endswith(b"}"):
                data = sock.recv(65536)
                if not data:
                    break
                response += data
        except (ConnectionResetError, TimeoutError):
            pass
    return response.decode("latin-1"), sent


def test_a_streamed_upload_is_refused_while_it_streams(server):
    response, sent = _chunked_upload(server.port, total=256 * 2**20)
    assert response.startswith("HTTP/1.1 413") and "stream.png: over the limit of 1048576 bytes" in response
    assert sent < 32 * 2**20  # refused after about the 1 MiB limit (plus socket buffers), not after 256 MiB
    assert server.client.get("/health").status_code == 200


def test_an_empty_body_is_a_400_whatever_its_content_type(server):
    for content_type in ("image/png", "multipart/form-data; boundary=x"):
        response = server.client.post("/predict", content=b"", headers={"Content-Type": content_type})
        assert response.status_code == 400 and "empty" in response.json()["error"], response.text


def test_requests_without_files_are_refused(server):
    assert server.client.post("/predict", json={"image": "x"}).status_code == 415
    response = server.client.post("/predict", data={"note": "no file"}, files=[("x", ("", b"", "text/plain"))])
    assert response.status_code in (400, 415) and "error" in response.json()
    metrics = server.client.get("/metrics").text
    assert _metric(metrics, 'nipad_errors_total{endpoint="/predict",kind="client"}') >= 2
    assert "nipad_request_latency_seconds_bucket" in metrics


def test_a_failed_prompt_update_leaves_pool_and_files_intact(server):
    def digest():
        return {n: hashlib.sha256((server.run / n).read_bytes()).hexdigest()
                for n in ("model.safetensors", "calibration.json", "config.json")}

    before, classes = digest(), server.client.get("/classes").json()
    files = _files(("good.png", _png(_checkerboard(2))), ("cut.png", _png(_checkerboard(3))[:100]))
    response = server.client.post("/prompts/boards", files=files, headers=WRITE)
    assert response.status_code == 400 and "cut.png" in response.json()["error"]
    assert server.client.post("/prompts/bad name!", files=_files(("a.png", _png(_checkerboard(2)))),
                              headers=WRITE).status_code == 400
    assert digest() == before and server.client.get("/classes").json() == classes


def _run_files(run):
    return {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}])
def test_a_write_without_the_token_is_refused_before_the_body_is_read_and_changes_nothing(server, headers):
    before = _run_files(server.run)
    response = server.client.post("/prompts/intruder", files=_files(("a.png", _png(_checkerboard(4)))),
                                  headers=headers)
    assert response.status_code == 401 and "Authorization: Bearer" in response.json()["error"]
    assert _run_files(server.run) == before
    assert "intruder" not in {c["name"] for c in server.client.get("/classes").json()["classes"]}
    assert TOKEN not in response.text


def test_prompt_update_serves_a_new_class_and_persists_it(server):
    files = _files(*((f"{i}.png", _png(_checkerboard(10 + i))) for i in range(3)))
    response = server.client.post("/prompts/boards", files=files, headers=WRITE)
    assert response.status_code == 200, response.text
    assert response.json()["class"] == "boards" and response.json()["prompts"] == 1
    assert "boards" in {c["name"] for c in server.client.get("/classes").json()["classes"]}
    result = server.client.post("/predict", files=_files(("new.png", _png(_checkerboard(20))))).json()["results"][0]
    assert result["class"] == "boards" and result["threshold_class"] == "boards"
    detector, info = load_detector(server.run)
    assert "boards" in detector.prompts.class_names and "boards" in info.prompt_classes
    assert "boards" in Calibration.load(server.run).classes


def test_serve_with_a_bad_run_dir_is_a_one_line_error(tmp_path, capsys):
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
