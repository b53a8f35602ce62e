"""Updates of a run directory (nipad.runs.integrity.update): one writer at a time across processes, each applied on
top of the run as it is on disk, all or nothing whatever point a kill -9 or a full disk stops it at."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from safetensors import SafetensorError

from nipad.cli.main import main
from nipad.engine.calibration import ALL, FILE as CALIBRATION, Calibration
from nipad.engine.predict import ImageInput, predict
from nipad.engine.prompts import add_prompts
from nipad.errors import OutputError
from nipad.families import load_run
from nipad.runs import checkpoint, integrity, journal, locking
from nipad.runs.checkpoint import STATE
from nipad.runs.run_info import CONFIG, WEIGHTS
from nipad.serve.service import InspectionService
from nipad.serve.settings import ServeSettings

FILES = (CONFIG, WEIGHTS, CALIBRATION)


@pytest.fixture
def run(untrained_onenip_run, tmp_path, one_thread):
    copy = tmp_path / "run"
    shutil.copytree(untrained_onenip_run, copy)
    return copy


@pytest.fixture
def images(tiny_mvtec):
    """Three normal images for each new class of these tests (the same pictures: only the class names differ)."""
    return [str(p) for p in sorted((tiny_mvtec / "dots/train/good").glob("*.png"))[:3]]


def _files(run):
    return {name: (run / name).read_bytes() for name in FILES}


def _check_consistent(run, image):
    """The run loads as one version: every prompt class in the config is in the weights and has its own thresholds
    (never the pooled ones), and a prediction works. Returns the prompt classes."""
    model, info = load_run(run)
    calibration = Calibration.load(run)
    assert model.prompts.class_names == info.prompt_classes
    assert set(info.prompt_classes) <= set(calibration.classes) - {ALL}
    for name in FILES:
        integrity.verify(run, name)
    assert not (run / integrity.PENDING / integrity.JOURNAL).exists()
    [prediction] = predict(model, calibration, [ImageInput(Path(image), Path("x.png"))])
    assert prediction.class_name in info.prompt_classes
    return info.prompt_classes


DRIVER = """
import sys, time
from pathlib import Path
from nipad.cli.main import main
Path(sys.argv[1]).write_text("ready")
while not Path(sys.argv[2]).exists():
    time.sleep(0.01)
sys.exit(main(sys.argv[3:]))
"""


def test_two_cli_writers_and_two_services_at_once_lose_nothing(run, images, tmp_path):
    """The issue's case: concurrent `nipad prompt add` of different classes and two services' updates on one run
    each exited 0 and classes were lost, or the run was left corrupt."""
    go = tmp_path / "go"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", DRIVER, str(tmp_path / f"ready-{name}"), str(go), "prompt", "add",
                               str(run), "--class", name, *images], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in ("cli-a", "cli-b")]
    services = {name: InspectionService(ServeSettings(run_dir=run, threads=1)) for name in ("service-a", "service-b")}
    uploads = [(Path(p).name, Path(p).read_bytes()) for p in images]
    deadline = time.monotonic() + 120
    while not all((tmp_path / f"ready-{name}").exists() for name in ("cli-a", "cli-b")):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.05)
    go.write_text("go")
    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(lambda item: item[1].add_prompts(item[0], uploads, 1, None), services.items()))
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert [d["class"] for d in done] == ["service-a", "service-b"]
    classes = _check_consistent(run, images[0])
    assert set(classes) == {"stripes", "dots", "cli-a", "cli-b", "service-a", "service-b"}
    for service in services.values():  # each service serves what the other writers added too
        assert {"cli-a", "cli-b", "service-a", "service-b"} <= {c["name"] for c in service.classes() if c["calibrated"]}


def test_a_service_notices_what_another_process_wrote_and_updates_on_top_of_it(run, images):
    service = InspectionService(ServeSettings(run_dir=run, threads=1))
    add_prompts(run, "elsewhere", images)  # as `nipad prompt add` in another process: the service is not told
    assert "elsewhere" in {c["name"] for c in service.classes()}
    assert service.snapshot.version == integrity.version(run)
    service.add_prompts("here", [(Path(p).name, Path(p).read_bytes()) for p in images], 1, None)
    assert {"elsewhere", "here"} <= set(_check_consistent(run, images[0]))
    manifest = json.loads((run / integrity.MANIFEST).read_text())
    manifest["files"][WEIGHTS]["sha256"] = "0" * 64  # a later change that cannot be loaded: the loaded run serves on
    (run / integrity.MANIFEST).write_text(json.dumps(manifest))
    assert "here" in {c["name"] for c in service.classes()}
    assert len(service.score([_input(images[0])])) == 1


def _input(path):
    import numpy as np

    from nipad.data import load_image

    return np.ascontiguousarray(load_image(path, 64).transpose(2, 0, 1))


class Killed(BaseException):
    """What a kill -9 is to the code: it stops there, and nothing it would clean up on the way out runs."""


def _kill_at(monkeypatch, point):
    """Stop the next update at `point` as a kill -9 would (no clean-up of its staged files)."""
    monkeypatch.setattr(integrity.Update, "abort", lambda self: None)
    if point.startswith("staging "):
        name, real = point.split()[1], integrity.Update.write_file

        def write_file(self, staged, write, fsync=True):
            if staged == name:
                raise Killed
            real(self, staged, write, fsync)

        monkeypatch.setattr(integrity.Update, "write_file", write_file)
        return
    target, after = point.split()[-1], point.startswith("after ")
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name == target and not after:
            raise Killed
        real_replace(src, dst)
        if Path(dst).name == target:
            raise Killed

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize(("point", "added"), [
    ("staging config.json", False),  # the weights written, not config.json (the issue: IndexError afterwards)
    (f"staging {CALIBRATION}", False),  # all but calibration.json (the issue: pooled thresholds, silently)
    (f"before {integrity.JOURNAL}", False),  # everything staged, not committed
    (f"after {integrity.JOURNAL}", True),  # committed, nothing moved yet
    (f"after {CONFIG}", True),  # calibration and config moved in, the weights not
    (f"after {WEIGHTS}", True),  # every file moved, the manifest not written
    (f"after {integrity.MANIFEST}", True),  # all done but the clean-up
])
def test_a_kill_at_any_point_of_prompt_add_leaves_the_old_or_the_new_run(run, images, monkeypatch, tmp_path,
                                                                         capsys, point, added):
    before = _files(run)
    _kill_at(monkeypatch, point)
    with pytest.raises(Killed):
        add_prompts(run, "new", images)
    monkeypatch.undo()
    classes = _check_consistent(run, images[0])  # a reader completes a committed update
    assert ("new" in classes) is added
    if not added:
        assert _files(run) == before
    assert main(["predict", str(run), images[0], "--out", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    add_prompts(run, "later", images)  # the next writer finds a clean run
    assert set(_check_consistent(run, images[0])) == {"stripes", "dots", "later"} | ({"new"} if added else set())
    assert not (run / integrity.PENDING).exists()


KILLER = """
import os, signal, sys
from pathlib import Path
from nipad.cli.main import main
real = os.replace
def replace(src, dst):
    real(src, dst)
    if Path(dst).name == sys.argv[1]:
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace
sys.exit(main(sys.argv[2:]))
"""


def test_a_real_kill_9_between_config_json_and_the_weights(run, images):
    """A process killed by SIGKILL after moving in the new config.json, before the weights: the next reader
    completes the update."""
    proc = subprocess.run([sys.executable, "-c", KILLER, CONFIG, "prompt", "add", str(run), "--class", "new", *images],
                          env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (run / integrity.PENDING / integrity.JOURNAL).is_file()
    assert "new" in _check_consistent(run, images[0])


def _last_error(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    return err.splitlines()[-1]


@pytest.mark.parametrize("failure", [
    SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)"),
    OSError(errno.ENOSPC, "No space left on device"),
])
def test_a_full_disk_during_prompt_add_is_one_clear_error_and_the_run_is_intact(run, images, monkeypatch, capsys,
                                                                                failure):
    before = _files(run)

    def full(tensors, path):
        Path(path).write_bytes(b"partial")
        raise failure

    monkeypatch.setattr(checkpoint, "save_file", full)
    assert main(["prompt", "add", str(run), "--class", "new", *images]) == 2
    line = _last_error(capsys)
    assert line == (f"nipad: error: no space left on device writing {run / WEIGHTS}: free space and rerun; the run is "
                    f"intact (its files are as before this update)")
    assert _files(run) == before and not (run / integrity.PENDING).exists()
    monkeypatch.undo()
    assert "new" not in _check_consistent(run, images[0])


def test_a_full_disk_during_a_training_checkpoint_is_a_clear_error(run, monkeypatch):
    """torch.save says only "unexpected pos ..." when the disk is full: the free space tells."""
    checkpoint.save_train_state(run, {"history": [1]})
    before = (run / STATE).read_bytes()

    def full(state, path):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    monkeypatch.setattr(journal.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(100, 100, 0))
    with pytest.raises(OutputError, match=f"no space left on device writing {run / STATE}: free space and rerun"):
        checkpoint.save_train_state(run, {"history": [1, 2]})
    assert (run / STATE).read_bytes() == before
    monkeypatch.setattr(journal.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(2**40, 0, 2**40))
    with pytest.raises(RuntimeError, match="unexpected pos"):  # not a full disk: not disguised as one
        checkpoint.save_train_state(run, {"history": [1, 2]})


def test_a_writer_waits_for_another_process_holding_the_lock(run, images, capfd):
    import fcntl

    fd = os.open(run / integrity.LOCK, os.O_RDWR | os.O_CREAT)  # another open file: as another process holds it
    fcntl.flock(fd, fcntl.LOCK_EX)
    errors = []
    writer = threading.Thread(target=lambda: errors.append(add_prompts(run, "waited", images)))
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while "waiting for it to finish" not in capfd.readouterr().err:
            assert time.monotonic() < deadline and writer.is_alive()
            time.sleep(0.1)
        assert "waited" not in json.loads((run / CONFIG).read_text())["prompt_classes"]
    finally:
        os.close(fd)
    writer.join(120)
    assert errors and errors[0]["class"] == "waited"
    assert "waited" in _check_consistent(run, images[0])


def test_without_posix_file_locks_a_write_is_refused_clearly(run, images, monkeypatch):
    monkeypatch.setattr(locking, "fcntl", None)
    before = _files(run)
    with pytest.raises(OutputError, match="fcntl.flock"):
        add_prompts(run, "new", images)
    assert _files(run) == before
