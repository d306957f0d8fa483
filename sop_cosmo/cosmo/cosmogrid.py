"""Reader for CosmoGridV1 stage-III weak-lensing maps (the layout of DESIGN.md §3.1).

The tree::

    ROOT/CosmoGrid/CosmoGridV1_metainfo.h5
    ROOT/CosmoGrid/stage3_forecast/{grid|fiducial}/<cosmo>/<perm>/
        projected_probes_maps_{nobaryons|baryonified}512.h5

Each map file holds full-sky HEALPix RING vectors ``kg/stage3_lensing{b}`` (convergence) and
``ia/stage3_lensing{b}`` (intrinsic alignment), or ``map/{probe}/stage3_lensing{b}`` in the v1.1
layout. The observed signal per bin is ``kg + A_IA * ia``. Any nside is accepted, so tests can
use small maps; the file name keeps "512".

Every error is a :class:`CosmoGridError` naming the file and what to do about it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

__all__ = [
    "SETS",
    "VARIANTS",
    "CosmoGridError",
    "MapRecord",
    "find_maps",
    "map_filename",
    "metainfo_path",
    "read_map",
    "read_metainfo",
]

SETS = ("grid", "fiducial")
VARIANTS = ("nobaryons", "baryonified")
PROBES = ("kg", "ia", "dg")


class CosmoGridError(ValueError):
    """Bad or missing CosmoGridV1 input; the message names the file and the fix."""


@dataclass(frozen=True)
class MapRecord:
    """One map file and the parameters of its cosmology.

    Attributes
    ----------
    path : Path
        The HDF5 map file.
    set : str
        ``"grid"`` or ``"fiducial"``.
    cosmo : str
        Cosmology folder name, e.g. ``"cosmo_000001"`` or ``"cosmo_delta_s8_p"``.
    perm : int
        Permutation (simulation) index from the ``perm_XXXX`` folder.
    params : Mapping[str, float]
        The cosmology's numeric metainfo fields (Om, s8, H0, Ob, ns, w0, As, ...).
    """

    path: Path
    set: str
    cosmo: str
    perm: int
    params: Mapping[str, float] = field(hash=False)


def map_filename(variant: str = "nobaryons") -> str:
    """File name of a map for ``variant`` ("nobaryons" or "baryonified")."""
    if variant not in VARIANTS:
        raise CosmoGridError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    return f"projected_probes_maps_{variant}512.h5"


def metainfo_path(root: str | Path) -> Path:
    """Default location of the metainfo file under ``root``."""
    return Path(root) / "CosmoGrid" / "CosmoGridV1_metainfo.h5"


def read_metainfo(path: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """Parameters per set and cosmology folder name.

    Parameters
    ----------
    path : str or Path
        ``CosmoGridV1_metainfo.h5``.

    Returns
    -------
    dict
        ``{set: {cosmo_folder: {field: value}}}`` for the sets present in the file; a row is
        keyed by the last path component of its ``path_par``.
    """
    path = Path(path)
    if not path.is_file():
        raise CosmoGridError(
            f"{path}: metainfo file not found; put CosmoGridV1_metainfo.h5 under ROOT/CosmoGrid/ "
            "or give its path explicitly (config key data.metainfo)"
        )
    out: dict[str, dict[str, dict[str, float]]] = {}
    with _open(path) as f:
        for set_name in SETS:
            key = f"parameters/{set_name}"
            if key not in f:
                continue
            table = f[key][()]
            names = table.dtype.names or ()
            if "path_par" not in names:
                raise CosmoGridError(f"{path}: {key} has no 'path_par' field; fields are {names}")
            numeric = [n for n in names if np.issubdtype(table.dtype[n], np.number)]
            rows = {}
            for row in table:
                cosmo = _last_component(row["path_par"])
                rows[cosmo] = {n: float(row[n]) for n in numeric}
            out[set_name] = rows
    if not out:
        raise CosmoGridError(
            f"{path}: no parameters/grid or parameters/fiducial dataset; is this the "
            "CosmoGridV1 metainfo file?"
        )
    return out


def find_maps(
    root: str | Path,
    *,
    variant: str = "nobaryons",
    sets: Sequence[str] = ("grid",),
    metainfo: str | Path | None = None,
) -> list[MapRecord]:
    """All map files of the chosen sets and variant, sorted, each with its parameters.

    Parameters
    ----------
    root : str or Path
        The folder that contains ``CosmoGrid/``.
    variant : {"nobaryons", "baryonified"}
        Which map file to read in each permutation folder.
    sets : sequence of {"grid", "fiducial"}
        Sets to include.
    metainfo : str or Path, optional
        Metainfo file; defaults to ``ROOT/CosmoGrid/CosmoGridV1_metainfo.h5``.
    """
    filename = map_filename(variant)
    for s in sets:
        if s not in SETS:
            raise CosmoGridError(f"sets: expected items of {SETS}, got {s!r}")
    base = Path(root) / "CosmoGrid" / "stage3_forecast"
    if not base.is_dir():
        raise CosmoGridError(
            f"{base}: not found; ROOT must contain CosmoGrid/stage3_forecast/{{grid,fiducial}}/"
            " (run `sop-cosmo simulate --out ROOT` for a simulated tree)"
        )
    meta_file = Path(metainfo) if metainfo is not None else metainfo_path(root)
    meta = read_metainfo(meta_file)
    records = []
    for set_name in sets:
        for cosmo_dir in sorted((base / set_name).glob("cosmo_*")):
            for perm_dir in sorted(cosmo_dir.glob("perm_*")):
                path = perm_dir / filename
                if not path.is_file():
                    raise CosmoGridError(
                        f"{path}: missing; the folder {perm_dir} has no {variant} map. "
                        "Download it again, remove the folder, or choose the other variant."
                    )
                params = meta.get(set_name, {}).get(cosmo_dir.name)
                if params is None:
                    raise CosmoGridError(
                        f"{path}: no row in {meta_file} parameters/{set_name} whose path_par "
                        f"ends with {cosmo_dir.name}; use the metainfo file of this data release"
                    )
                perm = _perm_index(perm_dir)
                records.append(MapRecord(path, set_name, cosmo_dir.name, perm, params))
    if not records:
        raise CosmoGridError(
            f"{base}: no {filename} found for sets {tuple(sets)}; check ROOT and the variant"
        )
    return records


def read_map(path: str | Path, *, bins: Iterable[int] = (1, 2, 3, 4), a_ia: float = 0.0):
    """The observed convergence ``kg + a_ia * ia`` of one map file.

    Parameters
    ----------
    path : str or Path
        A ``projected_probes_maps_*512.h5`` file.
    bins : iterable of int
        Tomographic bins (1-based, as in ``stage3_lensing{b}``).
    a_ia : float
        Intrinsic-alignment amplitude; 0 reads ``kg`` only.

    Returns
    -------
    numpy.ndarray
        float32 array (n_bins, 12·nside²), HEALPix RING order.
    """
    path = Path(path)
    bins = list(bins)
    if not bins:
        raise CosmoGridError(f"{path}: bins is empty; pass e.g. bins=(1, 2, 3, 4)")
    if not path.is_file():
        raise CosmoGridError(f"{path}: map file not found; check ROOT or download it again")
    maps = []
    with _open(path) as f:
        for b in bins:
            kappa = _read_probe(f, path, "kg", b)
            if a_ia != 0.0:
                kappa = kappa + a_ia * _read_probe(f, path, "ia", b)
            maps.append(kappa)
    npix = {m.size for m in maps}
    if len(npix) > 1:
        raise CosmoGridError(f"{path}: bins {bins} have different lengths {sorted(npix)}")
    return np.stack(maps).astype(np.float32, copy=False)


def _open(path: Path) -> h5py.File:
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise CosmoGridError(
            f"{path}: cannot be opened as HDF5 ({err}); the file is truncated or corrupt, "
            "download it again"
        ) from err


def _read_probe(f: h5py.File, path: Path, probe: str, b: int) -> np.ndarray:
    sample = f"stage3_lensing{b}"
    for key in (f"{probe}/{sample}", f"map/{probe}/{sample}"):  # v1 and v1.1 layouts
        if key in f:
            break
    else:
        raise CosmoGridError(
            f"{path}: bin {b} was asked for, but neither {probe}/{sample} nor "
            f"map/{probe}/{sample} exists (bins present: {_bins_present(f, probe)}); "
            "change the bins setting"
        )
    try:
        data = np.asarray(f[key][()], dtype=np.float32)  # the files' own dtype
    except OSError as err:
        raise CosmoGridError(
            f"{path}: dataset {key} cannot be read ({err}); the file is truncated, "
            "download it again"
        ) from err
    npix = data.size
    nside = math.isqrt(npix // 12) if npix % 12 == 0 else 0
    if data.ndim != 1 or nside < 1 or 12 * nside * nside != npix:
        raise CosmoGridError(
            f"{path}: {key} has shape {data.shape}, not a HEALPix map of 12·nside² pixels"
        )
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise CosmoGridError(f"{path}: {key} has {bad} NaN or inf pixels; the map is unusable")
    return data


def _bins_present(f: h5py.File, probe: str) -> list[int]:
    found = set()
    for group in (probe, f"map/{probe}"):
        if group in f and isinstance(f[group], h5py.Group):
            for name in f[group]:
                if name.startswith("stage3_lensing") and name[14:].isdigit():
                    found.add(int(name[14:]))
    return sorted(found)


def _last_component(path_par: bytes | str) -> str:
    text = path_par.decode() if isinstance(path_par, bytes) else str(path_par)
    return text.rstrip("/").rsplit("/", 1)[-1]


def _perm_index(perm_dir: Path) -> int:
    suffix = perm_dir.name.removeprefix("perm_")
    if not suffix.isdigit():
        raise CosmoGridError(f"{perm_dir}: expected a folder named perm_NNNN")
    return int(suffix)
