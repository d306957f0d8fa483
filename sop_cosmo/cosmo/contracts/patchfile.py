"""The patch file ``{train,val,test}.h5``: one writer, one reader (docs/contracts.md, "Patch file").

Layout::

    kappa        (N, C, H, W) float32   physical convergence (not standardised)
    params       (N, P)       float32   targets; params.attrs["names"] = the P names
    cosmo_id     (N,)         int64     cosmology of each row (splits share none)
    <extra>      (N, ...)               optional per-row datasets (perm, patch_index, u, ...)
    file attrs                          REQUIRED_ATTRS, plus any the producer adds

:func:`write_patch_file` writes a file in one shot (controls, tests); :class:`PatchFileWriter`
streams one (preprocess). Both write atomically (a temporary file renamed on success).
:func:`read_attrs`, :func:`read_patches` and :func:`open_patch_file` check the schema first;
every error names the file and what is wrong. The streamed reader of one or more files of a
split is :class:`sop_cosmo.cosmo.contracts.patchrows.PatchRows`, built on these.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from sop_cosmo._io import atomic_path

__all__ = [
    "REQUIRED_ATTRS",
    "PatchArrays",
    "PatchFileWriter",
    "file_attrs",
    "open_patch_file",
    "param_names",
    "plain",
    "read_attrs",
    "read_patches",
    "write_patch_file",
]

#: File attributes every patch file must carry.
REQUIRED_ATTRS: tuple[str, ...] = (
    "pixel_arcmin",
    "patch_size",
    "nside",
    "bins",
    "smoothing_arcmin",
    "noise",
    "source",
)
#: The datasets every patch file holds.
_DATASETS: tuple[str, ...] = ("kappa", "params", "cosmo_id")
HINT = "is this a patch file from `sop-cosmo preprocess`?"

PathLike = str | os.PathLike


@dataclass(frozen=True)
class PatchArrays:
    """The rows of a patch file in memory: ``kappa`` (N, C, H, W) float32 physical κ,
    ``params`` (N, P) float32, ``cosmo_id`` (N,) int64, the P ``param_names`` in column order,
    and the file ``attrs`` as plain Python values."""

    kappa: np.ndarray
    params: np.ndarray
    cosmo_id: np.ndarray
    param_names: list[str]
    attrs: dict[str, Any]

    def __len__(self) -> int:
        return int(self.kappa.shape[0])


def plain(value: Any) -> Any:
    """An HDF5 attribute value as a plain Python value (str, int, float, bool or list)."""
    # h5py hands back numpy scalars/arrays and sometimes bytes; checkpoints and JSON want
    # plain Python values.
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


# ------------------------------------------------------------------------------------ writing


def _check_attrs(path: Path, attrs: Mapping[str, Any], n_bins: int, patch_size: int) -> None:
    missing = [a for a in REQUIRED_ATTRS if a not in attrs]
    if missing:
        raise ValueError(f"{path}: attrs lack {missing}; a patch file needs {REQUIRED_ATTRS}")
    bins = np.atleast_1d(attrs["bins"])
    if len(bins) != n_bins or int(attrs["patch_size"]) != patch_size:
        raise ValueError(
            f"{path}: kappa has {n_bins} bins of {patch_size}×{patch_size} pixels, but attrs "
            f"say bins={list(bins)}, patch_size={attrs['patch_size']}"
        )


def write_patch_file(
    path: PathLike,
    *,
    kappa: ArrayLike,
    params: ArrayLike,
    cosmo_id: ArrayLike,
    param_names: Sequence[str],
    attrs: Mapping[str, Any],
    extra: Mapping[str, ArrayLike] | None = None,
) -> Path:
    """Write a whole patch file at once, atomically; returns ``path``.

    ``kappa`` (N, C, H, W) is stored as float32, ``params`` (N, P) as float32 with
    ``attrs["names"] = param_names``, ``cosmo_id`` (N,) as int64; ``extra`` holds further
    per-row datasets (first axis N), written as given, in order. ``attrs`` must hold
    :data:`REQUIRED_ATTRS` and agree with kappa's shape.
    """
    path = Path(path)
    kappa = np.asarray(kappa, dtype=np.float32)
    params = np.asarray(params, dtype=np.float32)
    cosmo_id = np.asarray(cosmo_id, dtype=np.int64)
    names = [str(n) for n in param_names]
    if kappa.ndim != 4:
        raise ValueError(f"{path}: kappa must be (N, C, H, W), got shape {kappa.shape}")
    n, c, h, w = kappa.shape
    if h != w:
        raise ValueError(f"{path}: patches must be square, got {h}×{w}")
    if params.shape != (n, len(names)):
        raise ValueError(
            f"{path}: params must be (N={n}, P={len(names)}) for names {names}, got {params.shape}"
        )
    if cosmo_id.shape != (n,):
        raise ValueError(f"{path}: cosmo_id must be (N={n},), got {cosmo_id.shape}")
    _check_attrs(path, attrs, c, h)
    extra = dict(extra or {})
    for name, value in extra.items():
        if name in _DATASETS or np.shape(value)[:1] != (n,):
            raise ValueError(f"{path}: extra dataset {name!r} must be a new name with N={n} rows")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f["kappa"] = kappa
        f["params"] = params
        f["params"].attrs["names"] = names
        f["cosmo_id"] = cosmo_id
        for name, value in extra.items():
            f[name] = value
        f.attrs.update(dict(attrs))
    return path


class PatchFileWriter:
    """Stream rows into a patch file; the file appears (atomically) on :meth:`close`.

    ``n_bins`` and ``patch_size`` fix C and H = W of every row; ``attrs`` must hold
    :data:`REQUIRED_ATTRS`. ``extra`` declares further per-row datasets, created empty up front:
    name → dtype, or name → (dtype, trailing shape); every :meth:`append` then gives each.
    Used as a context manager, an exception discards the file instead of writing it.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        n_bins: int,
        patch_size: int,
        param_names: Sequence[str],
        attrs: Mapping[str, Any],
        extra: Mapping[str, DTypeLike | tuple[DTypeLike, tuple[int, ...]]] | None = None,
    ) -> None:
        self.path = Path(path)
        _check_attrs(self.path, attrs, int(n_bins), int(patch_size))
        self._names = [str(n) for n in param_names]
        self._extra = list(extra or {})
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(self.path))
        self._file = h5py.File(tmp, "w")
        try:
            self._create(int(n_bins), int(patch_size), dict(extra or {}), attrs)
        except BaseException:
            self.abort()
            raise

    def _create(self, n_bins: int, size: int, extra: dict, attrs: Mapping[str, Any]) -> None:
        f, n_par = self._file, len(self._names)
        f.create_dataset(
            "kappa", (0, n_bins, size, size), "f4", maxshape=(None, n_bins, size, size),
            chunks=(1, n_bins, size, size),
        )  # fmt: skip
        f.create_dataset("params", (0, n_par), "f4", maxshape=(None, n_par))
        f["params"].attrs["names"] = self._names
        f.create_dataset("cosmo_id", (0,), "i8", maxshape=(None,))
        for name, spec in extra.items():
            dtype, shape = spec if isinstance(spec, tuple) else (spec, ())
            f.create_dataset(name, (0, *shape), dtype, maxshape=(None, *shape))
        for key, value in attrs.items():
            f.attrs[key] = value

    def __len__(self) -> int:
        return int(self._file["kappa"].shape[0])

    def append(
        self, kappa: ArrayLike, params: ArrayLike, cosmo_id: ArrayLike, **extra_datasets: ArrayLike
    ) -> None:
        """Append n rows: kappa (n, C, H, W); params (n, P) or one (P,) row for all;
        cosmo_id (n,) or one id for all; and one value (or n rows) per declared extra dataset.
        """
        f = self._file
        if set(extra_datasets) != set(self._extra):
            raise ValueError(
                f"{self.path}: append needs exactly the extra datasets {self._extra}, "
                f"got {sorted(extra_datasets)}"
            )
        kappa = np.asarray(kappa)
        if kappa.ndim != 4 or kappa.shape[1:] != f["kappa"].shape[1:]:
            raise ValueError(
                f"{self.path}: kappa rows must be {f['kappa'].shape[1:]}, got {kappa.shape[1:]}"
            )
        n, start = len(kappa), f["kappa"].shape[0]
        params = np.asarray(params)
        names = ("kappa", "params", "cosmo_id", *self._extra)
        for name in names:
            f[name].resize(start + n, axis=0)
        f["kappa"][start:] = kappa
        f["params"][start:] = np.broadcast_to(params, (n, len(self._names)))
        f["cosmo_id"][start:] = cosmo_id
        for name in self._extra:
            f[name][start:] = extra_datasets[name]

    def close(self) -> Path:
        """Finish the file and move it into place; returns its path."""
        if self._file:
            self._file.close()
        self._stack.close()
        return self.path

    def abort(self) -> None:
        """Discard the file."""
        if self._file:
            self._file.close()
        with contextlib.suppress(_Abort):
            self._stack.__exit__(_Abort, _Abort(), None)

    def __enter__(self) -> PatchFileWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class _Abort(Exception):
    """Thrown into the atomic write to discard it."""


# ------------------------------------------------------------------------------------ reading


def _check_schema(f: h5py.File, path: Path, *, allow_empty: bool = False) -> tuple[int, list[str]]:
    """Validate the layout; return N and the parameter names."""
    for name in _DATASETS:
        if name not in f:
            raise ValueError(f"{path}: no dataset {name!r}; {HINT}")
        if not isinstance(f[name], h5py.Dataset):
            raise ValueError(f"{path}: {name!r} is a group, not a dataset; {HINT}")
    missing = [a for a in REQUIRED_ATTRS if a not in f.attrs]
    if missing:
        raise ValueError(f"{path}: missing file attribute(s) {missing}; {HINT}")
    kappa, params, cid = f["kappa"], f["params"], f["cosmo_id"]
    if kappa.ndim != 4 or kappa.dtype.kind != "f":
        raise ValueError(
            f"{path}: dataset 'kappa' must be float (N, C, H, W), got {kappa.dtype} {kappa.shape}"
        )
    n, c, h, w = kappa.shape
    if n == 0 and not allow_empty:
        raise ValueError(f"{path}: dataset 'kappa' is empty (0 patches)")
    if params.ndim != 2 or params.shape[0] != n or params.dtype.kind != "f":
        raise ValueError(
            f"{path}: dataset 'params' must be float (N={n}, P), got {params.dtype} {params.shape}"
        )
    if "names" not in params.attrs:
        raise ValueError(f"{path}: dataset 'params' has no attribute 'names'; {HINT}")
    names = [str(plain(v)) for v in np.atleast_1d(params.attrs["names"])]
    if len(names) != params.shape[1]:
        raise ValueError(
            f"{path}: params.attrs['names'] has {len(names)} names for {params.shape[1]} columns"
        )
    if cid.shape != (n,) or cid.dtype.kind not in "iu":
        raise ValueError(
            f"{path}: dataset 'cosmo_id' must be integer (N={n},), got {cid.dtype} {cid.shape}"
        )
    bins = np.atleast_1d(f.attrs["bins"])
    size = int(f.attrs["patch_size"])
    if len(bins) != c or (h, w) != (size, size):
        raise ValueError(
            f"{path}: 'kappa' has shape {kappa.shape}, but the attributes say {len(bins)} bins "
            f"of {size}×{size} pixels"
        )
    return n, names


def _open(path: Path) -> h5py.File:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such patch file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err}); {HINT}") from err


def open_patch_file(path: PathLike, *, allow_empty: bool = False) -> h5py.File:
    """The open (read-only) file, after a schema check; for chunked reads. Close it yourself
    (or use it in a ``with`` block). ``allow_empty`` accepts a file of 0 rows (a chunk of the
    preprocessing may have none of a split's cosmologies).

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When it is not a readable HDF5 file or breaks the schema (the message names the file).
    """
    path = Path(path)
    f = _open(path)
    try:
        _check_schema(f, path, allow_empty=allow_empty)
    except BaseException:
        f.close()
        raise
    return f


def param_names(f: h5py.File) -> list[str]:
    """The target names of an open patch file."""
    return [str(plain(v)) for v in np.atleast_1d(f["params"].attrs["names"])]


def file_attrs(f: h5py.File) -> dict[str, Any]:
    """The file attributes of an open patch file, as plain Python values."""
    return {k: plain(v) for k, v in f.attrs.items()}


def read_attrs(path: PathLike) -> dict[str, Any]:
    """Validate a patch file's schema and return its attributes as plain Python values."""
    with open_patch_file(path) as f:
        return file_attrs(f)


def read_patches(path: PathLike, index: ArrayLike | None = None) -> PatchArrays:
    """Read rows of a patch file (all, or the sorted row indices ``index``).

    Raises
    ------
    FileNotFoundError, ValueError
        As :func:`open_patch_file`; also for an index that is not sorted, unique and in range.
    """
    path = Path(path)
    with open_patch_file(path) as f:
        n_total = f["kappa"].shape[0]
        rows: Any = slice(None)
        if index is not None:
            idx = np.asarray(index, dtype=np.int64).reshape(-1)
            if idx.size and (np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] >= n_total):
                raise ValueError(
                    f"{path}: index must be sorted, unique row numbers in [0, {n_total})"
                )
            # A plain slice when every row is read: h5py's point selection is slow on long lists.
            if len(idx) != n_total:
                rows = idx
        return PatchArrays(
            kappa=np.asarray(f["kappa"][rows], dtype=np.float32),
            params=np.asarray(f["params"][rows], dtype=np.float32),
            cosmo_id=np.asarray(f["cosmo_id"][rows], dtype=np.int64),
            param_names=param_names(f),
            attrs=file_attrs(f),
        )
