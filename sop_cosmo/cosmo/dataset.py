"""Patch files (docs/contracts.md, "Patch file") as standardised tensors for training and
evaluation; they are read through :mod:`sop_cosmo.cosmo.contracts.patchfile`.

A patch file holds physical κ (not standardised, so its sign survives for the void/cluster
analysis). The models see standardised inputs and targets instead:

* ``cnn`` / ``sop``: κ standardised **per tomographic bin** (mean and std over all pixels of
  the train split, per bin);
* ``stats``: the classical summary statistics
  (:func:`sop_cosmo.cosmo.maths.summaries.summary_statistics`) standardised **per feature**;
* targets: standardised **per parameter**.

The statistics live in a :class:`Normalization`, computed once from the train split and reused
for the validation and test splits (and stored in every checkpoint), so that all splits share
one coordinate system.

κ inputs are **streamed** by default: :class:`StreamedPatches` reads the rows a batch asks for
from the patch files (one or more per split) and standardises them on the fly, and the
statistics come from one pass over the files in blocks, so memory does not grow with the number
of patches (only the (N, P) targets and the N cosmology ids stay in RAM). ``in_memory=True``
reads the whole split into one array instead (a little faster for small splits). Both give the
same values bit for bit: the statistics are reduced over the same blocks in the same order, and
a row is standardised by the same float32 operations.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from sop_cosmo.cosmo.config import TrainConfig
from sop_cosmo.cosmo.contracts.patchfile import plain
from sop_cosmo.cosmo.contracts.patchrows import PatchRows

__all__ = [
    "FEATURE_KINDS",
    "PIXEL_KINDS",
    "Normalization",
    "PatchData",
    "StreamedPatches",
    "load_split",
]

#: Model kinds whose input is the κ patch itself.
PIXEL_KINDS: tuple[str, ...] = ("cnn", "sop")
#: Model kinds whose input is the vector of summary statistics.
FEATURE_KINDS: tuple[str, ...] = ("stats",)
# Bytes of float32 κ per block when reducing or transforming: bounds temporary float64 / FFT
# memory, whatever the patch size.
_BLOCK_BYTES = 16 << 20


@dataclass
class Normalization:
    """Standardisation statistics of one training split; plain lists, so JSON and torch.save
    (``weights_only``) can store them.

    Attributes
    ----------
    kind : str
        The model kind they were computed for ("cnn", "sop" or "stats").
    param_names : list of str
        Target names, in column order.
    input_mean, input_std : list of float
        Per bin (length C) for pixel kinds, per feature (length F) for "stats".
    target_mean, target_std : list of float
        Per parameter (length P).
    feature_names : list of str, optional
        Names of the F statistics ("stats" only).
    stats_options : dict, optional
        Keyword arguments of ``summary_statistics`` used for the features ("stats" only).
    """

    kind: str
    param_names: list[str]
    input_mean: list[float]
    input_std: list[float]
    target_mean: list[float]
    target_std: list[float]
    feature_names: list[str] | None = None
    stats_options: dict[str, Any] | None = field(default=None)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for checkpoints and JSON."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalization:
        """Inverse of :meth:`to_dict`."""
        return cls(**d)

    @property
    def pixels(self) -> bool:
        """True when the inputs are κ patches (standardised per bin)."""
        return self.kind in PIXEL_KINDS

    def standardise_targets(self, y: Tensor) -> Tensor:
        """Physical (N, P) → standardised."""
        mean, std = self._target_stats(y)
        return (y - mean) / std

    def destandardise(self, y: Tensor) -> Tensor:
        """Standardised (N, P) → physical units."""
        mean, std = self._target_stats(y)
        return y * std + mean

    def _target_stats(self, y: Tensor) -> tuple[Tensor, Tensor]:
        if y.shape[-1] != len(self.param_names):
            raise ValueError(
                f"y: last axis has {y.shape[-1]} columns, expected {len(self.param_names)} "
                f"({self.param_names})"
            )
        kw = {"dtype": y.dtype, "device": y.device}
        return torch.tensor(self.target_mean, **kw), torch.tensor(self.target_std, **kw)


@dataclass
class PatchData:
    """One split, standardised.

    Attributes
    ----------
    x : Tensor or StreamedPatches
        float32 inputs: (N, C, H, W) κ for pixel kinds (streamed from the files unless read
        with ``in_memory``; index it, e.g. ``x[idx]`` or ``x[:]``, for a tensor), (N, F)
        statistics for "stats" (always in memory).
    y : Tensor
        float32 (N, P) standardised targets.
    y_phys : Tensor
        float32 (N, P) targets in physical units (as in the file).
    cosmo_id : Tensor
        int64 (N,).
    attrs : dict
        The file attributes, as plain Python values.
    norm : Normalization
        The statistics used (the train split's).
    path : Path
        The (first) file read.
    paths : tuple of Path
        Every file of the split, in row order.
    """

    x: Tensor | StreamedPatches
    y: Tensor
    y_phys: Tensor
    cosmo_id: Tensor
    attrs: dict[str, Any]
    norm: Normalization
    path: Path
    paths: tuple[Path, ...] = ()

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def param_names(self) -> list[str]:
        """Target names, in column order."""
        return list(self.norm.param_names)

    @property
    def in_channels(self) -> int:
        """Tomographic bins C (from the file attributes, valid for every kind)."""
        return len(self.attrs["bins"])

    @property
    def patch_size(self) -> int:
        """Patch side in pixels."""
        return int(self.attrs["patch_size"])

    @property
    def n_features(self) -> int | None:
        """F for "stats" inputs, else None."""
        return None if self.norm.pixels else int(self.x.shape[1])

    def destandardise(self, y: Tensor) -> Tensor:
        """Standardised predictions (N, P) → physical units."""
        return self.norm.destandardise(y)


# ------------------------------------------------------------------------------ standardising


def _safe_std(std: NDArray[np.float64]) -> NDArray[np.float64]:
    # A constant channel/feature/parameter (e.g. Ωm fixed on a σ8-only grid) would divide by
    # zero; mapping it to 0 with std 1 keeps it harmless and invertible.
    return np.where(std > 0, std, 1.0)


def _block_rows(rows: PatchRows) -> int:
    """Rows per block of :data:`_BLOCK_BYTES` float32 κ."""
    return max(1, _BLOCK_BYTES // (4 * int(np.prod(rows.datasets["kappa"][1]))))


def _pixel_stats(blocks: Iterable[NDArray]) -> tuple[NDArray, NDArray]:
    """Per-bin mean and std over (N, H, W), in one pass over (n, C, H, W) blocks.

    Each block is reduced in float64 around its own mean and merged with the running total
    (Chan, Golub & LeVeque's pairwise update), which is as accurate as a two-pass reduction.
    """
    count, mean, m2 = 0, None, None
    for block in blocks:
        b = np.asarray(block, dtype=np.float64)
        n = b.shape[0] * b.shape[2] * b.shape[3]
        b_mean = b.mean(axis=(0, 2, 3))
        d = b - b_mean[:, None, None]
        b_m2 = np.einsum("nchw,nchw->c", d, d)
        if mean is None:
            count, mean, m2 = n, b_mean, b_m2
            continue
        delta, total = b_mean - mean, count + n
        mean = mean + delta * (n / total)
        m2 = m2 + b_m2 + delta**2 * (count * n / total)
        count = total
    assert mean is not None and m2 is not None  # a patch file has at least one row
    return mean, _safe_std(np.sqrt(m2 / count))


def _standardise_inplace(block: NDArray[np.float32], m: NDArray, s: NDArray) -> None:
    # float32 (C, 1, 1) mean and std: the in-memory and the streamed path share these exact
    # operations, so both give the same bits.
    block -= m
    block /= s


def _first_bad_row(rows: PatchRows, start: int, block: NDArray) -> Path | None:
    finite = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
    return None if finite.all() else rows.file_of(start + int(np.argmin(finite)))


def _features(
    rows: PatchRows, pixel_arcmin: float, options: dict[str, Any]
) -> tuple[NDArray[np.float32], list[str]]:
    """Summary statistics of every patch, read and computed block by block."""
    from sop_cosmo.cosmo.maths.summaries import summary_statistics

    out, names = [], []
    for a, b in rows.blocks(_block_rows(rows)):
        kappa = rows.read_range("kappa", a, b).astype(np.float32, copy=False)
        try:
            feats, names = summary_statistics(kappa, pixel_arcmin, **options)
        except ValueError as err:
            raise ValueError(
                f"{rows.file_of(a)}: summary statistics failed ({err}); small patches need a "
                f"smaller 'ps_bins' in stats_options"
            ) from err
        out.append(feats)
    return np.concatenate(out), list(names)


def _json_options(options: dict[str, Any] | None) -> dict[str, Any]:
    # nu_bins may arrive as an array; the checkpoint keeps a plain list.
    return {k: plain(np.asarray(v)) if k == "nu_bins" else v for k, v in (options or {}).items()}


# ---------------------------------------------------------------------------------- streaming


class StreamedPatches:
    """Standardised κ (N, C, H, W) float32 of a split, read from its patch files on demand.

    Indexed like a tensor's first axis, by an int, a slice or an index array/tensor (any order,
    repeats allowed), it returns a tensor. The rows of a batch are read in increasing file
    order, each run of consecutive rows in one read (:meth:`PatchRows.read`). Rows of a split
    that no statistics pass has seen are checked for NaN/inf when read.
    """

    dtype = torch.float32

    def __init__(self, rows: PatchRows, mean: Sequence[float], std: Sequence[float], *,
                 checked: bool) -> None:  # fmt: skip
        self.rows = rows
        self.shape: tuple[int, ...] = (len(rows), *rows.datasets["kappa"][1])
        self._mean = np.asarray(mean, dtype=np.float32)[:, None, None]
        self._std = np.asarray(std, dtype=np.float32)[:, None, None]
        self._checked = checked

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: int | slice | Tensor | NDArray | Sequence[int]) -> Tensor:
        if isinstance(key, (int, np.integer)) or (isinstance(key, Tensor) and key.ndim == 0):
            return self[[int(key)]][0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self._finish(self.rows.read_range("kappa", start, max(start, stop)), start)
            key = np.arange(start, stop, step)
        index = key.numpy() if isinstance(key, Tensor) else np.asarray(key)
        return self._finish(self.rows.read("kappa", index), None, index)

    def _finish(self, block: NDArray, start: int | None, index: NDArray | None = None) -> Tensor:
        block = block.astype(np.float32, copy=False)
        if not self._checked and not np.isfinite(block).all():
            finite = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
            bad = int(np.argmin(finite))
            row = int(index.reshape(-1)[bad]) % len(self) if index is not None else start + bad
            raise ValueError(f"{self.rows.file_of(row)}: non-finite values in 'kappa'")
        _standardise_inplace(block, self._mean, self._std)
        return torch.from_numpy(block)


# ---------------------------------------------------------------------------------- load_split


def _as_paths(path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(path, (str, os.PathLike)):
        return [Path(path)]
    return [Path(p) for p in path]


def load_split(
    path: str | os.PathLike | Sequence[str | os.PathLike],
    kind: str,
    *,
    norm: Normalization | None = None,
    stats_options: dict[str, Any] | None = None,
    in_memory: bool = TrainConfig.in_memory,
) -> PatchData:
    """Read a split's patch file(s) as standardised inputs and targets.

    Parameters
    ----------
    path : path-like or sequence of path-likes
        A ``{train,val,test}.h5`` patch file (docs/contracts.md, "Patch file"), or several
        files of one split (their rows in the order given).
    kind : {"cnn", "sop", "stats"}
        Model kind: κ inputs standardised per bin, or summary statistics per feature.
    norm : Normalization, optional
        Statistics to reuse (the train split's, or a checkpoint's). When None they are
        computed from these files, which must then be the train split.
    stats_options : dict, optional
        Keyword arguments of :func:`~sop_cosmo.cosmo.maths.summaries.summary_statistics`
        ("stats" only, and only when ``norm`` is None; a given ``norm`` carries its own).
    in_memory : bool
        Pixel kinds: read the whole split into one tensor instead of streaming it
        (:class:`StreamedPatches`). The values are the same either way.

    Returns
    -------
    PatchData

    Raises
    ------
    FileNotFoundError
        When a file does not exist.
    ValueError
        On a schema error (the message names the file and the missing dataset or attribute),
        files of one split that disagree, non-finite values (for a streamed split with a given
        ``norm``: when the row is read), or a ``norm`` that does not fit the file (parameter
        names, bins, statistics).
    """
    if kind not in PIXEL_KINDS + FEATURE_KINDS:
        raise ValueError(f"kind: expected one of {PIXEL_KINDS + FEATURE_KINDS}, got {kind!r}")
    paths = _as_paths(path)
    pixels = kind in PIXEL_KINDS
    if norm is not None and norm.pixels != pixels:
        raise ValueError(
            f"norm: computed for a {norm.kind!r} model, which has different inputs than {kind!r}"
        )
    rows = PatchRows(paths)
    first, names, attrs = paths[0], rows.param_names, rows.attrs
    if norm is not None and list(norm.param_names) != names:
        raise ValueError(
            f"{first}: parameters {names} differ from the training split's {list(norm.param_names)}"
        )
    params = rows.read_range("params", 0, len(rows)).astype(np.float32, copy=False)
    cosmo_id = rows.read_range("cosmo_id", 0, len(rows)).astype(np.int64, copy=False)
    if not np.isfinite(params).all():
        raise ValueError(f"{rows.file_of(int(np.argmin(np.isfinite(params).all(1))))}: "
                         "non-finite values in 'params'")  # fmt: skip
    blocks = rows.blocks(_block_rows(rows))
    n_bins = rows.datasets["kappa"][1][0]
    options: dict[str, Any] | None = None
    feature_names = None
    x: Any = None
    if pixels and in_memory:
        # One float32 buffer, standardised in place: no second copy of what may be gigabytes.
        x = np.empty((len(rows), *rows.datasets["kappa"][1]), dtype=np.float32)
        for a, b in blocks:
            x[a:b] = rows.read_range("kappa", a, b)
            bad = _first_bad_row(rows, a, x[a:b])
            if bad is not None:
                raise ValueError(f"{bad}: non-finite values in 'kappa'")
    elif not pixels:
        options = _json_options(norm.stats_options if norm is not None else stats_options)
        x, feature_names = _features(rows, float(attrs["pixel_arcmin"]), options)
        if not np.isfinite(x).all():
            raise ValueError(f"{first}: non-finite values in the statistics of 'kappa'")

    if norm is None:
        if pixels:
            in_mean, in_std = _pixel_stats(_checked_blocks(rows, blocks, x))
        else:
            in_mean = x.mean(axis=0, dtype=np.float64)
            in_std = _safe_std(x.std(axis=0, dtype=np.float64))
        norm = Normalization(
            kind=kind,
            param_names=names,
            input_mean=[float(v) for v in in_mean],
            input_std=[float(v) for v in in_std],
            target_mean=[float(v) for v in params.mean(axis=0, dtype=np.float64)],
            target_std=[float(v) for v in _safe_std(params.std(axis=0, dtype=np.float64))],
            feature_names=feature_names,
            stats_options=None if pixels else options,
        )
        checked = True
    else:
        checked = in_memory
        if pixels and len(norm.input_mean) != n_bins:
            raise ValueError(
                f"{first}: {n_bins} tomographic bins, the training split had {len(norm.input_mean)}"
            )
        if not pixels and feature_names != norm.feature_names:
            raise ValueError(f"{first}: the summary statistics differ from the training split's")

    if pixels and in_memory:
        m = np.asarray(norm.input_mean, dtype=np.float32)[:, None, None]
        s = np.asarray(norm.input_std, dtype=np.float32)[:, None, None]
        for a, b in blocks:
            _standardise_inplace(x[a:b], m, s)
        x = torch.from_numpy(x)
    elif pixels:
        x = StreamedPatches(rows, norm.input_mean, norm.input_std, checked=checked)
    else:
        mean = np.asarray(norm.input_mean, dtype=np.float32)
        std = np.asarray(norm.input_std, dtype=np.float32)
        x = torch.from_numpy((x - mean) / std)
    y_phys = torch.from_numpy(params)
    return PatchData(
        x=x,
        y=norm.standardise_targets(y_phys).contiguous(),
        y_phys=y_phys,
        cosmo_id=torch.from_numpy(cosmo_id),
        attrs=attrs,
        norm=norm,
        path=first,
        paths=tuple(paths),
    )


def _checked_blocks(
    rows: PatchRows, blocks: list[tuple[int, int]], x: NDArray | None
) -> Iterable[NDArray]:
    """The κ blocks of the statistics pass: from ``x`` when in memory (already checked), else
    read from the files and checked for NaN/inf on the way."""
    for a, b in blocks:
        if x is not None:
            yield x[a:b]
            continue
        block = rows.read_range("kappa", a, b)
        bad = _first_bad_row(rows, a, block)
        if bad is not None:
            raise ValueError(f"{bad}: non-finite values in 'kappa'")
        yield block
