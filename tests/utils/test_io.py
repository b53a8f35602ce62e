import os
import stat
import subprocess
import sys

from nipad.utils.io import atomic_write_text


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
