"""progress_bar: in place on a terminal; whole lines, spaced and deduplicated, in a log."""

import io
import time

from sop_cosmo import _progress
from sop_cosmo._progress import interactive, progress_bar, progress_write


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _log(monkeypatch, interval=0.05):
    """A non-terminal stderr (set in the test itself: pytest swaps its own in per phase)."""
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr(_progress, "LINE_INTERVAL_S", interval)
    return stream


def test_a_log_gets_whole_lines_at_most_one_per_interval_and_the_last_state(monkeypatch):
    log = _log(monkeypatch)
    t0 = time.perf_counter()
    for _ in progress_bar(range(40), desc="maps", unit="map", leave=False):
        time.sleep(0.005)  # at least 0.2 s in all: 4 intervals or more
    elapsed = time.perf_counter() - t0
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    # one line after the first interval at the earliest, then at most one per interval
    assert 2 <= len(lines) <= elapsed / 0.05 + 1, lines
    assert all(line.startswith("maps:") for line in lines)
    assert "40/40" in lines[-1] and sum("40/40" in line for line in lines) == 1  # kept once


def test_work_shorter_than_an_interval_prints_nothing(monkeypatch):
    log = _log(monkeypatch, interval=5.0)
    with progress_bar(total=3, desc="quick") as bar:
        bar.update(3)
    assert log.getvalue() == ""


def test_disabled_bars_print_nothing_and_messages_get_their_own_line(monkeypatch, capsys):
    log = _log(monkeypatch)
    for _ in progress_bar(range(3), disable=True):
        time.sleep(0.03)
    assert log.getvalue() == ""
    progress_write("controls: positive passed")
    assert capsys.readouterr().out == "controls: positive passed\n"


def test_a_terminal_redraws_in_place(monkeypatch):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    assert interactive() and not interactive(io.StringIO())
    for _ in progress_bar(range(3), desc="maps", mininterval=0):
        pass
    assert "\r" in terminal.getvalue()
