"""Progress bars only on a terminal: elsewhere no carriage returns, one line per stage."""

import io

from nipad.utils.progress import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_piped_log_gets_one_line_per_stage_and_no_carriage_returns():
    log = io.StringIO()
    seen = list(progress(range(7), desc="testing", unit="batch", stream=log))
    with progress(total=5, desc="backbone features", unit="img", stream=log) as bar:
        for _ in range(5):
            bar.update()
            bar.set_postfix({"loss": "0.1"})
    text = log.getvalue()
    assert seen == list(range(7))
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("nipad: testing: 7 batches done in ") and lines[0].endswith(" s")
    assert lines[1].startswith("nipad: backbone features: 5 images done in ")


def test_a_stage_cut_short_says_so_and_quiet_stages_write_nothing():
    log = io.StringIO()
    with progress(total=4, desc="predicting", unit="img", stream=log) as bar:
        bar.update(3)
    assert log.getvalue().startswith("nipad: predicting: 3 of 4 images done")
    quiet = io.StringIO()
    list(progress(range(3), desc="epoch 1/2", stream=quiet, line=False))
    with progress(total=2, desc="other rank", stream=quiet, enabled=False) as bar:
        bar.update(2)
    try:
        with progress(total=2, desc="failed", stream=quiet) as bar:
            raise RuntimeError
    except RuntimeError:
        pass
    assert quiet.getvalue() == ""


def test_a_terminal_gets_the_bar():
    tty = Terminal()
    assert list(progress(range(3), desc="testing", unit="batch", stream=tty)) == [0, 1, 2]
    assert "\r" in tty.getvalue() and "testing" in tty.getvalue()
