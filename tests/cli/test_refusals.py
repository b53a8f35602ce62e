"""What nipad refuses on the command line: each case is exit code 2 with one `nipad: error:` line that names the
file or setting and the fix, never a traceback (issue #17)."""

import io
import json
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

import nipad.cli.train_cmd as train_cmd
from nipad.cli.main import main
from nipad.data import load_image
from nipad.engine.calibration import Calibration
from nipad.errors import DataError

from refusal import last_error


def claims_size(width: int, height: int) -> bytes:
    """A valid 8x8 grey PNG whose header claims width x height (CRC fixed): a decompression bomb in miniature."""
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = bytearray(data[12:29])
    ihdr[4:12] = struct.pack(">II", width, height)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
    return bytes(data)


def test_calibrate_on_a_folder_without_readable_images(run, tmp_path, capsys):
    for sub in ("train/good", "test/good"):
        (tmp_path / "data/stripes" / sub).mkdir(parents=True)
        (tmp_path / "data/stripes" / sub / "000.png").write_text("not an image")
    before = (run / "calibration.json").read_bytes()
    with pytest.warns(UserWarning):
        assert main(["calibrate", str(run), "--data", str(tmp_path / "data")]) == 2
    line = last_error(capsys)
    assert "none of the 1 calibration image(s) could be read" in line and "000.png" in line
    assert (run / "calibration.json").read_bytes() == before


def test_calibrate_with_a_class_the_run_lacks(run, tiny_mvtec, tmp_path, capsys):
    shutil.copytree(tiny_mvtec / "stripes", tmp_path / "data/gears")
    assert main(["calibrate", str(run), "--data", str(tmp_path / "data")]) == 2
    line = last_error(capsys)
    assert "has no class gears" in line and "prompt add" in line
    assert "gears" not in Calibration.load(run).classes


@pytest.mark.parametrize("out", ["/proc/nipad-test-out", "{tmp}/a-file/sub"])
def test_unwritable_outputs(run, tiny_mvtec, tmp_path, capsys, out):
    (tmp_path / "a-file").write_text("a file, not a folder")
    out = out.format(tmp=tmp_path)
    image = str(tiny_mvtec / "stripes/test/good/000.png")
    assert main(["predict", str(run), image, "--out", out]) == 2
    assert out in last_error(capsys)
    assert main(["export", str(run), "--out", f"{out}/e.onnx"]) == 2
    assert out in last_error(capsys)


def test_export_into_proc_is_refused(run, capsys):
    assert main(["export", str(run), "--format", "onnx", "--out", "/proc/e.onnx"]) == 2
    assert "/proc/e.onnx" in last_error(capsys)


@pytest.mark.parametrize("port", ["99999", "-1"])
def test_serve_on_an_impossible_port(run, capsys, port):
    assert main(["serve", str(run), "--port", port]) == 2
    assert "is not a TCP port" in last_error(capsys)


@pytest.mark.parametrize(("width", "height", "expected"), [
    (12000, 12000, "12000x12000 = 144000000 pixels, over the limit of 40000000 (--max-pixels)"),
    (30000, 30000, "too large to decode"),
])
def test_predict_refuses_huge_images_before_decoding(run, tmp_path, capsys, width, height, expected):
    (tmp_path / "in").mkdir()
    (tmp_path / "in/huge.png").write_bytes(claims_size(width, height))
    with pytest.warns(UserWarning, match="huge.png"):
        assert main(["predict", str(run), str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 2
    line = last_error(capsys)
    assert expected in line and "not an image file" not in line


def test_predict_max_pixels_is_a_budget_the_user_sets(run, tiny_mvtec, tmp_path, capsys):
    image = str(tiny_mvtec / "stripes/test/good/000.png")  # 64 x 64
    with pytest.warns(UserWarning, match="over the limit of 4000"):
        assert main(["predict", str(run), image, "--out", str(tmp_path / "o1"), "--max-pixels", "4000"]) == 2
    assert main(["predict", str(run), image, "--out", str(tmp_path / "o2"), "--max-pixels", "4096"]) == 0


@pytest.mark.parametrize(("extra", "expected"), [
    (["--class", "../x"], "invalid class name '../x'"),
    (["--class", "a/b"], "invalid class name 'a/b'"),
    (["--class", "ok", "--prompts", "-3"], "--prompts must be at least 1, got -3"),
])
def test_prompt_add_refuses_what_http_refuses(run, tiny_mvtec, capsys, extra, expected):
    images = [str(p) for p in sorted((tiny_mvtec / "stripes/train/good").glob("*.png"))[:3]]
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    assert main(["prompt", "add", str(run), *extra, *images]) == 2
    assert expected in last_error(capsys)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


@pytest.mark.parametrize("batch_size", ["2", "1"])
def test_a_class_from_two_images_never_flags_its_own_images(run, tmp_path, capsys, batch_size):
    rng = np.random.default_rng(7)
    images = []
    for i in range(2):
        board = np.where(((np.mgrid[0:80, 0:80].sum(0) // 8) % 2 == 0), 200.0, 60.0)[..., None]
        Image.fromarray(np.clip(board + rng.normal(0, 5, (80, 80, 3)), 0, 255).astype(np.uint8)).save(
            tmp_path / f"board{i}.png")
        images.append(str(tmp_path / f"board{i}.png"))
    with pytest.warns(UserWarning, match="fewer normal images than the 100 needed"):
        assert main(["prompt", "add", str(run), "--class", "boards", *images]) == 0
    assert "thresholds from the 2 prompt image(s) themselves" in capsys.readouterr().out
    threshold = Calibration.load(run).classes["boards"].image_threshold
    assert main(["predict", str(run), *images, "--out", str(tmp_path / "out"), "--batch-size", batch_size]) == 0
    rows = [json.loads(line) for line in (tmp_path / "out/predictions.jsonl").read_text().splitlines()]
    assert [r["class"] for r in rows] == ["boards", "boards"]
    assert max(r["pred_score"] for r in rows) == pytest.approx(threshold, rel=1e-6)  # one image IS the threshold
    assert not any(r["pred_label"] for r in rows)


def test_image_errors_name_the_file_not_a_python_object(tmp_path):
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError) as caught:
        load_image(tmp_path / "notes.png", 64)
    assert "notes.png" in str(caught.value) and "BytesIO" not in str(caught.value)


def test_interrupt_says_what_was_kept(tiny_mvtec, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cmd, "open_data", interrupted)
    argv = ["train", "--data", str(tiny_mvtec), "--out", str(tmp_path / "r"), "--model", "uniad"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "no checkpoint had been written" in err and "intact" not in err
    (tmp_path / "r").mkdir()
    (tmp_path / "r/config.json").write_text('{"epochs_done": 3, "finished": false}')
    assert main(argv) == 130
    assert "no checkpoint had been written" in capsys.readouterr().err  # a config alone is no checkpoint
    (tmp_path / "r/train_state.pt").write_bytes(b"state")
    assert main(argv) == 130
    assert "the last checkpoint (epoch 3)" in capsys.readouterr().err
