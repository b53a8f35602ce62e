import errno
import os
import stat
import subprocess
import sys

import pytest

from nipad.errors import OutputError
from nipad.utils.io import atomic_write, atomic_write_text, check_writable, read_json


def test_an_atomically_written_file_gets_the_mode_the_umask_gives_not_mkstemps_0600(tmp_path):
    path = tmp_path / "out.txt"
    atomic_write_text(path, "hello")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask and path.read_text() == "hello"


def test_the_mode_follows_another_umask(tmp_path):
    code = ("import os, stat, sys; from nipad.utils.io import atomic_write_text; atomic_write_text(sys.argv[1], 'x'); "
            "print(oct(stat.S_IMODE(os.stat(sys.argv[1]).st_mode)))")
    out = subprocess.run(f"umask 077 && {sys.executable} -c \"{code}\" {tmp_path / 'a'}", shell=True, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == "0o600"
    out = subprocess.run(f"umask 002 && {sys.executable} -c \"{code}\" {tmp_path / 'b'}", shell=True, check=True,
                         capture_output=True, text=True).stdout.strip()
    assert out == "0o664"


def test_a_folder_in_the_way_is_named_and_free_space_is_not_the_fix(tmp_path):
    (tmp_path / "model.onnx").mkdir()
    with pytest.raises(OutputError) as caught:
        atomic_write_text(tmp_path / "model.onnx", "x")
    assert "model.onnx is a folder" in str(caught.value) and "free disk space" not in str(caught.value)


def test_free_disk_space_is_the_fix_only_for_a_full_disk(tmp_path):
    def fails(code):
        def write(tmp):
            raise OSError(code, os.strerror(code))
        return write

    with pytest.raises(OutputError, match="free disk space"):
        atomic_write(tmp_path / "a", fails(errno.ENOSPC))
    with pytest.raises(OutputError) as caught:
        atomic_write(tmp_path / "b", fails(errno.EACCES))
    assert "free disk space" not in str(caught.value) and "choose an output place" in str(caught.value)


def test_json_nested_too_deeply_is_a_decode_error(tmp_path):
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="nested too deeply"):
        read_json(tmp_path / "deep.json")


def test_the_write_check_leaves_no_folder_it_created(tmp_path):
    out = tmp_path / "new" / "run"
    assert check_writable(out) == out
    assert not (tmp_path / "new").exists()  # a command refused after the check leaves nothing behind
    (tmp_path / "kept").mkdir()
    check_writable(tmp_path / "kept")
    assert (tmp_path / "kept").is_dir() and not list((tmp_path / "kept").iterdir())
