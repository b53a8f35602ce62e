"""What the refusal tests read: the one `nipad: error:` line a refused command prints."""


def last_error(capsys) -> str:
    """The last `nipad: error:` line on stderr, checking that no traceback came with it."""
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.startswith("nipad: error:")]
    assert lines, err
    return lines[-1]
