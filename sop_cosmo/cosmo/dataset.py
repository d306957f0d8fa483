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
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from sop_cosmo.cosmo.contracts.patchfile import file_attrs, open_patch_file, param_names, plain

if TYPE_CHECKING:
    import h5py

__all__ = [
    "FEATURE_KINDS",
    "PIXEL_KINDS",
    "Normalization",
    "PatchData",
    "load_split",
]

#: Model kinds whose input is the κ patch itself.
PIXEL_KINDS: tuple[str, ...] = ("cnn", "sop")
#: Model kinds whose input is the vector of summary statistics.
FEATURE_KINDS: tuple[str, ...] = ("stats",)
# Patches per chunk when reducing or transforming: bounds temporary float64 / FFT memory.
_CHUNK = 1024


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
    """One split in memory, standardised.

    Attributes
    ----------
    x : Tensor
        float32 inputs: (N, C, H, W) κ for pixel kinds, (N, F) statistics for "stats".
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
        The file read.
    """

    x: Tensor
    y: Tensor
    y_phys: Tensor
    cosmo_id: Tensor
    attrs: dict[str, Any]
    norm: Normalization
    path: Path

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


def _per_bin_stats(kappa: NDArray[np.float32]) -> tuple[NDArray, NDArray]:
    """Two-pass per-bin mean and std over (N, H, W), accumulated in float64 by chunk."""
    n, c = kappa.shape[:2]
    count = n * kappa.shape[2] * kappa.shape[3]
    total = np.zeros(c)
    for s in range(0, n, _CHUNK):
        total += kappa[s : s + _CHUNK].sum(axis=(0, 2, 3), dtype=np.float64)
    mean = total / count
    sq = np.zeros(c)
    for s in range(0, n, _CHUNK):
        d = kappa[s : s + _CHUNK].astype(np.float64) - mean[:, None, None]
        sq += np.einsum("nchw,nchw->c", d, d)
    return mean, _safe_std(np.sqrt(sq / count))


def _standardise_pixels_inplace(kappa: NDArray[np.float32], mean: NDArray, std: NDArray) -> None:
    m = np.asarray(mean, dtype=np.float32)[:, None, None]
    s = np.asarray(std, dtype=np.float32)[:, None, None]
    for i in range(0, kappa.shape[0], _CHUNK):
        block = kappa[i : i + _CHUNK]
        block -= m
        block /= s


def _features(
    ds: h5py.Dataset, pixel_arcmin: float, options: dict[str, Any], path: Path
) -> tuple[NDArray[np.float32], list[str]]:
    """Summary statistics of every patch, read and computed chunk by chunk."""
    from sop_cosmo.cosmo.maths.summaries import summary_statistics

    blocks, names = [], []
    for s in range(0, ds.shape[0], _CHUNK):
        kappa = np.asarray(ds[s : s + _CHUNK], dtype=np.float32)
        try:
            feats, names = summary_statistics(kappa, pixel_arcmin, **options)
        except ValueError as err:
            raise ValueError(
                f"{path}: summary statistics failed ({err}); small patches need a smaller "
                f"'ps_bins' in stats_options"
            ) from err
        blocks.append(feats)
    return np.concatenate(blocks), list(names)


def _json_options(options: dict[str, Any] | None) -> dict[str, Any]:
    # nu_bins may arrive as an array; the checkpoint keeps a plain list.
    return {k: plain(np.asarray(v)) if k == "nu_bins" else v for k, v in (options or {}).items()}


def load_split(
    path: str | os.PathLike,
    kind: str,
    *,
    norm: Normalization | None = None,
    stats_options: dict[str, Any] | None = None,
) -> PatchData:
    """Read a patch file into standardised tensors.

    Parameters
    ----------
    path : path-like
        A ``{train,val,test}.h5`` patch file (docs/contracts.md, "Patch file").
    kind : {"cnn", "sop", "stats"}
        Model kind: κ inputs standardised per bin, or summary statistics per feature.
    norm : Normalization, optional
        Statistics to reuse (the train split's, or a checkpoint's). When None they are
        computed from this file, which must then be the train split.
    stats_options : dict, optional
        Keyword arguments of :func:`~sop_cosmo.cosmo.maths.summaries.summary_statistics`
        ("stats" only, and only when ``norm`` is None; a given ``norm`` carries its own).

    Returns
    -------
    PatchData

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        On a schema error (the message names the file and the missing dataset or attribute),
        non-finite values, or a ``norm`` that does not fit the file (parameter names, bins,
        statistics).
    """
    if kind not in PIXEL_KINDS + FEATURE_KINDS:
        raise ValueError(f"kind: expected one of {PIXEL_KINDS + FEATURE_KINDS}, got {kind!r}")
    path = Path(path)
    pixels = kind in PIXEL_KINDS
    if norm is not None and norm.pixels != pixels:
        raise ValueError(
            f"norm: computed for a {norm.kind!r} model, which has different inputs than {kind!r}"
        )
    options: dict[str, Any] | None = None
    with open_patch_file(path) as f:
        names = param_names(f)
        attrs = file_attrs(f)
        params = np.asarray(f["params"][...], dtype=np.float32)
        cosmo_id = np.asarray(f["cosmo_id"][...], dtype=np.int64)
        if norm is not None and list(norm.param_names) != names:
            raise ValueError(
                f"{path}: parameters {names} differ from the training split's "
                f"{list(norm.param_names)}"
            )
        if pixels:
            # Read straight into one float32 buffer and standardise it in place: no second
            # copy of what may be gigabytes of κ.
            x = np.empty(f["kappa"].shape, dtype=np.float32)
            f["kappa"].read_direct(x)
            feature_names = None
        else:
            options = _json_options(norm.stats_options if norm is not None else stats_options)
            x, feature_names = _features(f["kappa"], float(attrs["pixel_arcmin"]), options, path)
    if not np.isfinite(params).all():
        raise ValueError(f"{path}: non-finite values in 'params'")
    if not np.isfinite(x).all():
        what = "'kappa'" if pixels else "the statistics of 'kappa'"
        raise ValueError(f"{path}: non-finite values in {what}")

    if norm is None:
        if pixels:
            in_mean, in_std = _per_bin_stats(x)
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
    elif pixels and len(norm.input_mean) != x.shape[1]:
        raise ValueError(
            f"{path}: {x.shape[1]} tomographic bins, the training split had {len(norm.input_mean)}"
        )
    elif not pixels and feature_names != norm.feature_names:
        raise ValueError(f"{path}: the summary statistics differ from the training split's")

    if pixels:
        _standardise_pixels_inplace(x, np.asarray(norm.input_mean), np.asarray(norm.input_std))
    else:
        mean = np.asarray(norm.input_mean, dtype=np.float32)
        std = np.asarray(norm.input_std, dtype=np.float32)
        x = (x - mean) / std
    y_phys = torch.from_numpy(params)
    return PatchData(
        x=torch.from_numpy(x),
        y=norm.standardise_targets(y_phys).contiguous(),
        y_phys=y_phys,
        cosmo_id=torch.from_numpy(cosmo_id),
        attrs=attrs,
        norm=norm,
        path=path,
    )
