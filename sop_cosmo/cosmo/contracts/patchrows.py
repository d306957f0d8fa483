"""Streamed reading of a split's patch files (docs/contracts.md, "Patch file"): the rows of one
or more files, read on demand in runs of consecutive rows, with bounded memory. Training streams
through it (:mod:`sop_cosmo.cosmo.dataset`), and so does the gather of preprocessing chunks.
The files are opened and schema-checked through :mod:`sop_cosmo.cosmo.contracts.patchfile`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import ArrayLike

from sop_cosmo.cosmo.contracts.patchfile import (
    HINT,
    REQUIRED_ATTRS,
    file_attrs,
    open_patch_file,
    param_names,
    plain,
)

__all__ = ["STREAM_CACHE_BYTES", "PatchRows"]

#: HDF5 chunk cache per file a :class:`PatchRows` opens. A streamed epoch reads each row about
#: once, so a cache bigger than a few rows buys nothing; the OS page cache does the caching.
STREAM_CACHE_BYTES = 4 << 20

PathLike = str | os.PathLike


class PatchRows:
    """The rows of one or more patch files of one split, read on demand, N = the sum of theirs.

    The files must agree on the layout: the parameter names, :data:`REQUIRED_ATTRS` and the
    datasets beyond kappa/params/cosmo_id. ``attrs`` are the first file's. Each process that
    reads opens its own read-only handles (DataLoader workers included), with an HDF5 chunk
    cache of :data:`STREAM_CACHE_BYTES` per file, so memory does not grow with N.
    """

    def __init__(self, paths: Sequence[PathLike], *, allow_empty: bool = False) -> None:
        self.paths = [Path(p) for p in paths]
        if not self.paths:
            raise ValueError("patch files: none given")
        counts, layouts = [], []
        for path in self.paths:
            with open_patch_file(path, allow_empty=allow_empty) as f:
                counts.append(int(f["kappa"].shape[0]))
                layouts.append(_layout(f))
                if path == self.paths[0]:
                    self.attrs, self.param_names = file_attrs(f), param_names(f)
        for path, layout in zip(self.paths[1:], layouts[1:], strict=True):
            for key, want in layouts[0].items():
                if layout.get(key) != want:
                    raise ValueError(
                        f"{path}: {key} is {layout.get(key)}, but {self.paths[0]} has {want}; "
                        "the files of one split must come from one preprocessing run"
                    )
        #: Row offsets of the files: file k holds global rows offsets[k] … offsets[k+1] − 1.
        self.offsets = np.cumsum([0, *counts])
        self.datasets: dict[str, tuple[np.dtype, tuple[int, ...]]] = layouts[0]["datasets"]
        self._handles: list[h5py.File] = []
        self._open: dict[tuple[int, str], h5py.Dataset] = {}
        self._pid = -1

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _dataset(self, k: int, name: str) -> h5py.Dataset:
        if self._pid != os.getpid():  # a forked worker must not share its parent's handles
            self._handles, self._open, self._pid = [], {}, os.getpid()
        ds = self._open.get((k, name))
        if ds is None:  # looked up once: a lookup by name costs as much as reading a row
            while len(self._handles) <= k:
                path = self.paths[len(self._handles)]
                try:
                    f = h5py.File(path, "r", rdcc_nbytes=STREAM_CACHE_BYTES, rdcc_nslots=1009)
                except OSError as err:
                    raise ValueError(f"{path}: not a readable HDF5 file ({err}); {HINT}") from err
                self._handles.append(f)
            ds = self._open[k, name] = self._handles[k][name]
        return ds

    def file_of(self, row: int) -> Path:
        """The file that holds global row ``row``."""
        return self.paths[int(np.searchsorted(self.offsets, row, side="right")) - 1]

    def blocks(self, rows: int) -> list[tuple[int, int]]:
        """(start, stop) ranges of at most ``rows`` rows covering all N in order, none across
        two files (the one block boundary every reader of a split uses)."""
        out = []
        for a, b in zip(self.offsets[:-1], self.offsets[1:], strict=True):
            out += [(int(s), int(min(s + rows, b))) for s in range(int(a), int(b), rows)]
        return out

    def read_range(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows ``start`` … ``stop`` − 1 of dataset ``name``, read file by file."""
        dtype, trailing = self.datasets[name]
        out = np.empty((max(0, stop - start), *trailing), dtype=dtype)
        for k, (a, b) in enumerate(zip(self.offsets[:-1], self.offsets[1:], strict=True)):
            lo, hi = max(start, int(a)), min(stop, int(b))
            if lo < hi:
                out[lo - start : hi - start] = self._dataset(k, name)[lo - a : hi - a]
        return out

    def read(self, name: str, index: ArrayLike) -> np.ndarray:
        """Rows ``index`` (any order, repeats allowed) of dataset ``name``: each run of
        consecutive rows is one read, in increasing file order."""
        idx = np.asarray(index, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"{self.paths[0]}: row index out of range for {n} rows")
        idx = np.where(idx < 0, idx + n, idx)
        if not idx.size:
            return np.empty((0, *self.datasets[name][1]), dtype=self.datasets[name][0])
        ordered = idx.size < 2 or bool(np.all(np.diff(idx) > 0))
        rows, inverse = (idx, None) if ordered else np.unique(idx, return_inverse=True)
        dtype, trailing = self.datasets[name]
        out = np.empty((len(rows), *trailing), dtype=dtype)
        file_k = np.searchsorted(self.offsets, rows, side="right") - 1
        cuts = np.flatnonzero((np.diff(rows) != 1) | (np.diff(file_k) != 0)) + 1
        local, ks = (rows - self.offsets[file_k]).tolist(), file_k.tolist()
        for a, b in zip(np.r_[0, cuts].tolist(), np.r_[cuts, len(rows)].tolist(), strict=True):
            out[a:b] = self._dataset(ks[a], name)[local[a] : local[a] + (b - a)]
        return out if inverse is None else out[inverse]

    def close(self) -> None:
        """Close the handles this process opened (they reopen on the next read)."""
        for f in self._handles:
            f.close()
        self._handles, self._open = [], {}

    def __getstate__(self) -> dict[str, Any]:
        # Pickled into a DataLoader worker: the handles stay behind, the worker opens its own.
        return {**self.__dict__, "_handles": [], "_open": {}, "_pid": -1}


def _layout(f: h5py.File) -> dict[str, Any]:
    """What the files of one split must share."""
    datasets = {
        name: (ds.dtype, tuple(ds.shape[1:]))
        for name, ds in f.items()
        if isinstance(ds, h5py.Dataset) and ds.ndim >= 1 and ds.shape[0] == f["kappa"].shape[0]
    }
    attrs = {a: plain(f.attrs[a]) for a in REQUIRED_ATTRS}
    return {"parameters": param_names(f), **attrs, "datasets": datasets}
