"""Options dataclasses as flags: each field's type picks the kind of flag, and a range is enforced by the parser."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import pytest

from nipad.families.flags import POSITIVE, Range, add_flags, flag, read_flags


@dataclass(frozen=True)
class Options:
    level: int = flag(2, metavar="L", allowed=Range(1, 3), help="how much")
    rate: float | None = flag(allowed=Range(0, 1, open_low=True))
    name: str | None = flag(choices=("a", "b"))
    quiet: bool = flag(False)
    shared: bool | None = flag()
    tags: list[str] | None = flag(metavar="TAG")


def _parse(*argv: str) -> Options:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_flags(parser, Options)
    return read_flags(parser.parse_args(argv), Options)


def test_each_field_type_is_its_kind_of_flag():
    assert _parse() == Options()
    parsed = _parse("--level", "3", "--rate", "0.5", "--name", "b", "--quiet", "--no-shared", "--tags", "x",
                    "--tags", "y")
    assert parsed == Options(3, 0.5, "b", True, False, ["x", "y"])
    assert _parse("--shared").shared is True


@pytest.mark.parametrize("argv, message", [
    (["--level", "4"], "must be in [1, 3], got 4"),
    (["--level", "x"], "invalid int value: 'x'"),
    (["--rate", "0"], "must be in (0, 1], got 0"),
    (["--rate", "nan"], "must be in (0, 1], got nan"),
])
def test_a_value_out_of_range_or_of_the_wrong_type_is_refused(argv, message):
    with pytest.raises(argparse.ArgumentError, match=message.replace("[", r"\[").replace("(", r"\(")):
        _parse(*argv)


def test_ranges_read_as_written():
    assert [str(r) for r in (Range(0), Range(0, open_low=True), Range(None, 5), Range(0, 1), POSITIVE)] == [
        "at least 0", "more than 0", "at most 5", "in [0, 1]", "in (0, inf)"]
    assert 1e300 in POSITIVE and math.inf not in POSITIVE and 0 not in POSITIVE and math.nan not in Range()


def test_a_field_without_default_is_a_programming_error():
    @dataclass(frozen=True)
    class Required:
        size: int

    with pytest.raises(TypeError, match="Required.size has no default"):
        add_flags(argparse.ArgumentParser(), Required)
