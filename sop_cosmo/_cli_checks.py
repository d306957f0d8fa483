"""Up-front checks of the ``sop-cosmo`` command line, so that a user error fails before anything
is created, as one line that names the option, the path and what to give instead.

Each subcommand declares the kind of every path option (:data:`PATCHES`, :data:`CHECKPOINT`,
...); :func:`check_paths` checks them all, plus ``--device`` and ``--backbone`` where the
command has them, and :func:`remove_created_dirs` removes the output folders a failed run
created and left empty.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = [
    "CHECKPOINT",
    "OUT_DIR",
    "OUT_FILE",
    "PATCHES",
    "ROOT",
    "SOP_CHECKPOINT",
    "check_paths",
    "one_line",
    "out_path",
    "remove_created_dirs",
]

#: A patch file written by ``sop-cosmo preprocess`` (read).
PATCHES = "patches"
#: A checkpoint of any model kind (read).
CHECKPOINT = "checkpoint"
#: A checkpoint of a ``sop`` model (read).
SOP_CHECKPOINT = "sop-checkpoint"
#: A folder that must exist (read).
ROOT = "root"
#: A folder the command creates or writes into.
OUT_DIR = "out-dir"
#: A file the command writes.
OUT_FILE = "out-file"

_OUTPUTS = (OUT_DIR, OUT_FILE)
_TRAIN_FIX = "the model.pt of a `sop-cosmo train` run"


def one_line(err: BaseException) -> str:
    """The message of ``err`` on one line (continuation lines joined with "; ")."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


def _readable_file(flag: str, path: Path, what: str, noun: str = "file") -> None:
    if not path.exists():
        raise FileNotFoundError(f"{flag} {path}: no such {noun}; give {what}")
    if path.is_dir():
        raise ValueError(f"{flag} {path}: is a folder, not a file; give {what}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"{flag} {path}: not readable (permission denied); fix its permissions")


def _patch_file(flag: str, path: Path) -> None:
    from sop_cosmo.cosmo.contracts.patchfile import read_attrs

    _readable_file(flag, path, "a {train,val,test}.h5 of `sop-cosmo preprocess`", "patch file")
    try:
        read_attrs(path)  # the schema check only; the stage reads the rows
    except (ValueError, OSError) as err:
        raise ValueError(f"{flag} {one_line(err)}") from err


def _checkpoint(flag: str, path: Path, command: str, kind: str | None = None) -> None:
    from sop_cosmo.cosmo.contracts.checkpoint import load_checkpoint

    need = f"the model.pt of a `sop-cosmo train --model {kind}` run" if kind else _TRAIN_FIX
    _readable_file(flag, path, need)
    try:
        load_checkpoint(path, expect_kind=kind, purpose=f"sop-cosmo {command}")
    except (ValueError, OSError) as err:
        raise ValueError(f"{flag} {one_line(err).removeprefix('checkpoint: ')}") from err


def _null_summary(path: str) -> None:
    """The stage's own check of ``--null-summary`` (the one there is), run before the other
    paths so that a typo there fails first, with the option's name."""
    from sop_cosmo.cosmo.analysis_files import read_null_summary

    try:
        read_null_summary(path)
    except ValueError as err:
        raise ValueError(f"--null-summary {one_line(err).removeprefix('null_summary: ')}") from err


def _root(flag: str, path: Path) -> None:
    fix = "give the folder that contains CosmoGrid/ (`sop-cosmo simulate --out ROOT` writes one)"
    if not path.exists():
        raise FileNotFoundError(f"{flag} {path}: no such folder; {fix}")
    if not path.is_dir():
        raise ValueError(f"{flag} {path}: is a file, not a folder; {fix}")


def _writable_place(flag: str, path: Path) -> None:
    """``path`` (a folder) exists and is writable, or can be created: its first existing
    ancestor is a writable folder."""
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{flag} {path}: {existing} is a file, not a folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(
            f"{flag} {path}: cannot write in {existing} (permission denied); choose a writable path"
        )


def _out_dir(flag: str, path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ValueError(
            f"{flag} {path}: exists and is not a directory (this command writes a folder "
            "there); give a folder path, or remove the file"
        )
    _writable_place(flag, path)


def _out_file(flag: str, path: Path) -> None:
    if path.is_dir():
        raise ValueError(
            f"{flag} {path}: is a directory (this command writes a file there); give a file "
            f"path such as {path / 'test_metrics.json'}"
        )
    _writable_place(flag, path.parent)


def _device(name: str) -> None:
    from sop_cosmo.cosmo.runtime import select_device

    try:
        select_device(name)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"--device {one_line(err).removeprefix('device: ')}") from err


def check_paths(
    command: str, args: argparse.Namespace, paths: Sequence[tuple[str, str, str]]
) -> None:
    """Check every path option of ``command`` (``(flag, help, kind)`` each), then ``--backbone``
    and ``--device`` when the command has them. Raises ValueError or FileNotFoundError with
    one line; creates nothing."""
    if getattr(args, "null_summary", None):
        _null_summary(args.null_summary)
    for flag, _help, kind in paths:
        path = Path(getattr(args, _dest(flag)))
        if kind == PATCHES:
            _patch_file(flag, path)
        elif kind in (CHECKPOINT, SOP_CHECKPOINT):
            _checkpoint(flag, path, command, "sop" if kind == SOP_CHECKPOINT else None)
        elif kind == ROOT:
            _root(flag, path)
        elif kind == OUT_DIR:
            _out_dir(flag, path)
        elif kind == OUT_FILE:
            _out_file(flag, path)
        else:  # pragma: no cover - a programming error in cli.py
            raise AssertionError(f"unknown path kind {kind!r}")
    if getattr(args, "backbone", None):
        _checkpoint("--backbone", Path(args.backbone), command, "cnn")
    if getattr(args, "metainfo", None):
        _readable_file("--metainfo", Path(args.metainfo), "a CosmoGridV1_metainfo.h5 file")
    if getattr(args, "device", None) is not None:
        _device(args.device)


def out_path(args: argparse.Namespace, paths: Sequence[tuple[str, str, str]]) -> Path | None:
    """The output folder of the command: ``--out`` itself, or a file's folder."""
    for flag, _help, kind in paths:
        if kind in _OUTPUTS:
            path = Path(getattr(args, _dest(flag)))
            return path if kind == OUT_DIR else path.parent
    return None


@contextlib.contextmanager
def remove_created_dirs(path: Path | None) -> Iterator[None]:
    """On an exception, remove the folders of ``path`` (deepest first) that did not exist on
    entry and are still empty; a folder that holds anything is kept, and so are its parents."""
    created: list[Path] = []
    p = path
    while p is not None and not p.exists() and p.parent != p:
        created.append(p)
        p = p.parent
    try:
        yield
    except BaseException:
        for d in created:
            if not d.exists():
                continue
            if not d.is_dir() or any(d.iterdir()):
                break
            d.rmdir()
        raise


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")
