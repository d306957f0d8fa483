"""Progress bars a person can follow on a terminal, in a notebook and in a log file.

On a terminal or in a notebook a bar redraws in place, as tqdm does. Anywhere else (a workflow
rule that pipes a step through ``tee`` into its log, a SLURM job's output file) redrawing
would pile carriage returns into one unreadable line, so there a bar prints whole lines
instead: nothing for work that ends within :data:`LINE_INTERVAL_S`, then a line at most every
:data:`LINE_INTERVAL_S` seconds and a last one when it ends.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable
from typing import Any, TextIO

from tqdm import tqdm as _tqdm_std
from tqdm.auto import tqdm as _tqdm_auto

__all__ = ["LINE_INTERVAL_S", "interactive", "progress_bar", "progress_write"]

#: Seconds between two progress lines where bars cannot redraw (and before the first one).
LINE_INTERVAL_S = 10.0


class _Lines(io.TextIOBase):
    """A stream for tqdm that turns each redraw into one whole line and drops blank ones."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._last = ""

    def write(self, s: str) -> int:
        text = s.replace("\r", "").strip()
        count = text.split("[")[0]  # the bar without its timings
        if text and count != self._last:  # closing redraws the last count once more
            self._stream.write(text + "\n")
            self._stream.flush()
            self._last = count
        return len(s)

    def flush(self) -> None:
        self._stream.flush()


def interactive(stream: TextIO | None = None) -> bool:
    """Whether bars on ``stream`` (default ``sys.stderr``) can redraw in place: a terminal,
    or a notebook (where tqdm.auto draws widgets)."""
    s = sys.stderr if stream is None else stream
    if type(s).__module__.startswith("ipykernel"):  # a notebook kernel's output stream
        return True
    isatty = getattr(s, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(iterable: Iterable | None = None, *, disable: bool = False, **kwargs: Any):
    """A tqdm bar (same arguments) that redraws where it can and prints lines elsewhere.

    Outside a terminal or notebook the bar writes to ``sys.stderr`` as whole lines, waits
    :data:`LINE_INTERVAL_S` before the first, prints at most one per interval, and always
    leaves its last line (so a log shows where each long step ended).
    """
    if disable or interactive():
        return _tqdm_auto(iterable, disable=disable, **kwargs)
    lines = {
        "file": _Lines(sys.stderr),
        "mininterval": LINE_INTERVAL_S,
        "delay": LINE_INTERVAL_S,
        "ascii": True,
        "ncols": 100,
        "leave": True,
    }
    return _tqdm_std(iterable, **{**kwargs, **lines})


def progress_write(message: str) -> None:
    """Print ``message`` on its own line without breaking a bar that is being drawn."""
    _tqdm_auto.write(message)
