"""Small I/O helpers shared by the package: atomic writes, JSON reads that name the file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "load_json"]


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    A crash or an exception leaves no half-written file behind, which is what Snakemake's
    incomplete-output handling expects.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    # mkstemp makes the file 0600; give the result the mode a plain open() would (0666 & ~umask)
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        if os.path.exists(tmp):
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_json(path: str | os.PathLike, *, what: str) -> dict[str, Any]:
    """Read a JSON file, with an error that names the file and ``what`` produces it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; {what}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); rerun {what}") from None
