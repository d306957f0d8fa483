"""The files of the void/cluster analysis (:mod:`sop_cosmo.cosmo.stages.analyse`): its inputs
read and checked (the analysed patch rows, σ_noise per bin, the permuted-label null's summary)
with one-line errors that say what to give instead, and its outputs written atomically.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from numpy.typing import NDArray

from sop_cosmo._io import atomic_path
from sop_cosmo.cosmo.contracts.patchfile import (
    PatchArrays,
    open_patch_file,
    param_names,
    read_patches,
)
from sop_cosmo.cosmo.dataset import Normalization
from sop_cosmo.cosmo.maths.claims import check_null_summary
from sop_cosmo.cosmo.maths.selection import map_indices

__all__ = [
    "read_analysed_patches",
    "read_null_summary",
    "sigma_noise_of",
    "write_csv",
    "write_groups_h5",
    "write_json",
]


def read_analysed_patches(
    data: Path, norm: Normalization, max_maps: int | None
) -> tuple[PatchArrays, NDArray[np.int64]]:
    """The analysed rows of ``data`` (checked against the checkpoint's ``norm``) and their
    indices in the file (``max_maps`` spread evenly over it)."""
    if not data.is_file():
        raise ValueError(f"data: {data}: no such patch file; give DIR/test.h5")
    with open_patch_file(data) as f:  # validates the patch-file schema
        names = param_names(f)
        n_total, c = f["kappa"].shape[:2]
    if names != list(norm.param_names):
        raise ValueError(
            f"data: {data} has parameters {names}, the checkpoint was trained on "
            f"{list(norm.param_names)}"
        )
    if c != len(norm.input_mean):
        raise ValueError(
            f"data: {data} has {c} tomographic bins, the checkpoint was trained on "
            f"{len(norm.input_mean)}"
        )
    idx = map_indices(n_total, max_maps)
    patches = read_patches(data, idx)
    if not np.isfinite(patches.kappa).all():
        raise ValueError(f"data: {data}: non-finite values in 'kappa'")
    return patches, idx


def sigma_noise_of(attrs: dict[str, Any], data: Path, n_bins: int) -> NDArray[np.float64]:
    """The file's σ_noise per bin; a file from before it was recorded is a one-line error."""
    if "sigma_noise" not in attrs:
        raise ValueError(
            f"data: {data} has no sigma_noise attribute (written by sop-cosmo preprocess since "
            "the noise-unit typing); rerun preprocess, or pass --type-units patch"
        )
    sigma = np.atleast_1d(np.asarray(attrs["sigma_noise"], dtype=np.float64))
    if sigma.shape != (n_bins,) or not (np.isfinite(sigma).all() and (sigma > 0).all()):
        raise ValueError(
            f"data: {data}: sigma_noise {sigma.tolist()} is not one σ > 0 per bin ({n_bins}); "
            "rerun preprocess"
        )
    return sigma


def read_null_summary(path: str | os.PathLike | None) -> dict[str, Any] | None:
    """The permuted-label null's summary (``--null-summary``), checked; None when not given.

    The one check of that option: the command line calls it before anything is created, and
    :func:`~sop_cosmo.cosmo.stages.analyse.analyze` before any model is loaded.

    Raises
    ------
    ValueError
        One line starting ``null_summary: PATH:`` for a missing, unreadable or non-JSON file,
        or one that is not an analysis summary.
    """
    if path is None:
        return None
    p = Path(path)
    fix = ("give the permuted-label null's summary.json (results/analyze_null_permuted/"
           "summary.json), or leave --null-summary out")  # fmt: skip
    if not p.exists():
        raise ValueError(f"null_summary: {p}: no such file; {fix}")
    if p.is_dir():
        raise ValueError(f"null_summary: {p}: is a folder, not a file; {fix}")
    try:
        null = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"null_summary: {p}: not JSON ({err}); give a summary.json") from err
    except OSError as err:
        raise ValueError(f"null_summary: {p}: cannot read ({err.strerror}); {fix}") from err
    return check_null_summary(null, str(p))


def write_json(path: Path, obj: Any) -> None:
    """``obj`` as strict JSON (no NaN), indented, written atomically."""
    with atomic_path(path) as tmp:
        # allow_nan=False: NaN would make the file invalid JSON for strict readers
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """``rows`` as CSV with the first row's keys as the header, written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def write_groups_h5(path: Path, arrays: dict[str, NDArray], attrs: dict[str, Any]) -> None:
    """``groups.h5``: one gzip dataset per array and the attributes, written atomically."""
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value, compression="gzip", compression_opts=4)
        for key, value in attrs.items():
            f.attrs[key] = value
