"""The CosmoGridV1 layout, read and written (docs/contracts.md, "CosmoGridV1 layout").

The tree::

    ROOT/CosmoGrid/CosmoGridV1_metainfo.h5
    ROOT/CosmoGrid/stage3_forecast/{grid|fiducial}/<cosmo>/<perm>/
        projected_probes_maps_{nobaryons|baryonified}512.h5

Each map file holds full-sky HEALPix RING vectors ``kg/stage3_lensing{b}`` (convergence) and
``ia/stage3_lensing{b}`` (intrinsic alignment), or ``map/{probe}/stage3_lensing{b}`` in the v1.1
layout. The observed signal per bin is ``kg + A_IA * ia``. Any nside is accepted, so tests can
use small maps; the file name keeps "512".

This module is the single owner of those names: the reader (:func:`find_maps`,
:func:`read_map`, :func:`read_metainfo`) and the simulator's writer (:func:`write_map`,
:func:`write_metainfo`) both use it. Every read error is a :class:`CosmoGridError` naming the
file and what to do about it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from sop_cosmo._io import atomic_path
from sop_cosmo.cosmo.config import PreprocessConfig

__all__ = [
    "COSMO_GLOB",
    "MAP_H5_OPTIONS",
    "METAINFO_RELPATH",
    "PERM_GLOB",
    "PROBES",
    "SETS",
    "VARIANTS",
    "CosmoGridError",
    "MapRecord",
    "cosmo_folder",
    "cosmo_id",
    "dataset_name",
    "find_maps",
    "map_filename",
    "map_header",
    "map_source",
    "metainfo_dtype",
    "metainfo_path",
    "path_par",
    "perm_folder",
    "read_map",
    "read_metainfo",
    "set_relpath",
    "write_map",
    "write_metainfo",
]


#: The CosmoGridV1 sets this reader knows.
SETS: tuple[str, ...] = ("grid", "fiducial")
#: Map variants (file names ``projected_probes_maps_{variant}512.h5``).
VARIANTS: tuple[str, ...] = ("nobaryons", "baryonified")
#: Probes of a map file: convergence, intrinsic alignment, galaxy density.
PROBES: tuple[str, ...] = ("kg", "ia", "dg")
#: The metainfo file, relative to ROOT.
METAINFO_RELPATH = Path("CosmoGrid") / "CosmoGridV1_metainfo.h5"
#: Map folders of the sets, relative to ROOT.
_FORECAST_RELPATH = Path("CosmoGrid") / "stage3_forecast"
#: Glob patterns of the cosmology and permutation folders.
COSMO_GLOB, PERM_GLOB = "cosmo_*", "perm_*"
#: HDF5 storage options of the maps the simulator writes.
MAP_H5_OPTIONS: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
_SAMPLE = "stage3_lensing"
_FIDUCIAL_ID_OFFSET = 10_000_000
_V11_PREFIX = "map/"


class CosmoGridError(ValueError):
    """Bad or missing CosmoGridV1 input; the message names the file and the fix."""


@dataclass(frozen=True)
class MapRecord:
    """One map file: its ``path``, ``set`` ("grid" or "fiducial"), ``cosmo`` folder name (e.g.
    "cosmo_000001" or "cosmo_delta_s8_p"), ``perm`` index (from the ``perm_XXXX`` folder) and
    ``params``, the cosmology's numeric metainfo fields (Om, s8, H0, Ob, ns, w0, As, ...).
    """

    path: Path
    set: str
    cosmo: str
    perm: int
    params: Mapping[str, float] = field(hash=False)


# -------------------------------------------------------------------------------------- names


def set_relpath(set_name: str) -> Path:
    """Folder of a set's cosmologies relative to ROOT, e.g. ``CosmoGrid/stage3_forecast/grid``."""
    return _FORECAST_RELPATH / set_name


def cosmo_folder(index: int) -> str:
    """Folder name of grid cosmology ``index`` (1-based), e.g. ``cosmo_000001``."""
    return f"cosmo_{index:06d}"


def perm_folder(perm: int) -> str:
    """Folder name of permutation ``perm`` (0-based), e.g. ``perm_0000``."""
    return f"perm_{perm:04d}"


def path_par(set_name: str, cosmo: str) -> str:
    """The metainfo ``path_par`` of a cosmology folder."""
    return (set_relpath(set_name) / cosmo).as_posix()


def cosmo_id(record: MapRecord) -> int:
    """Integer id of a record's cosmology: the grid index, or an offset id for fiducial sets."""
    suffix = record.cosmo.removeprefix("cosmo_")
    if record.set == SETS[0] and suffix.isdigit():
        return int(suffix)
    # Fiducial names (cosmo_fiducial, cosmo_delta_s8_p, ...): a stable id from a checksum.
    return _FIDUCIAL_ID_OFFSET + zlib.crc32(f"{record.set}/{record.cosmo}".encode())


def dataset_name(probe: str, b: int, *, layout: str = "v1") -> str:
    """HDF5 dataset of bin ``b`` (1-based) of ``probe``: ``kg/stage3_lensing1`` (v1) or
    ``map/kg/stage3_lensing1`` (v1.1)."""
    prefix = "" if layout == "v1" else _V11_PREFIX
    return f"{prefix}{probe}/{_SAMPLE}{b}"


def map_filename(variant: str = PreprocessConfig.variant) -> str:
    """File name of a map for ``variant`` ("nobaryons" or "baryonified")."""
    if variant not in VARIANTS:
        raise CosmoGridError(f"variant: expected one of {VARIANTS}, got {variant!r}")
    return f"projected_probes_maps_{variant}512.h5"


def metainfo_path(root: str | Path) -> Path:
    """Default location of the metainfo file under ``root``."""
    return Path(root) / METAINFO_RELPATH


def metainfo_dtype(fields: Sequence[str]) -> np.dtype:
    """Row dtype of a metainfo table: float64 ``fields`` and the ``path_par`` bytes."""
    return np.dtype([*((k, "f8") for k in fields), ("path_par", "S64")])


# ------------------------------------------------------------------------------------ reading


def read_metainfo(path: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """Parameters per set and cosmology folder of a ``CosmoGridV1_metainfo.h5``:
    ``{set: {cosmo_folder: {field: value}}}`` for the sets present in the file, a row keyed by
    the last path component of its ``path_par``.
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
    variant: str = PreprocessConfig.variant,
    sets: Sequence[str] = PreprocessConfig.sets,
    metainfo: str | Path | None = None,
) -> list[MapRecord]:
    """All map files of the chosen sets and variant, sorted, each with its parameters.

    ``root`` contains ``CosmoGrid/``; ``variant`` ("nobaryons" or "baryonified") chooses the map
    file of each permutation folder; ``sets`` are among ("grid", "fiducial"); ``metainfo``
    defaults to ``ROOT/CosmoGrid/CosmoGridV1_metainfo.h5``.
    """
    filename = map_filename(variant)
    for s in sets:
        if s not in SETS:
            raise CosmoGridError(f"sets: expected items of {SETS}, got {s!r}")
    base = Path(root) / _FORECAST_RELPATH
    if not base.is_dir():
        raise CosmoGridError(
            f"{base}: not found; ROOT must contain CosmoGrid/stage3_forecast/{{grid,fiducial}}/"
            " (run `sop-cosmo simulate --out ROOT` for a simulated tree)"
        )
    meta_file = Path(metainfo) if metainfo is not None else metainfo_path(root)
    meta = read_metainfo(meta_file)
    records = []
    for set_name in sets:
        for cosmo_dir in sorted((base / set_name).glob(COSMO_GLOB)):
            for perm_dir in sorted(cosmo_dir.glob(PERM_GLOB)):
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


def read_map(
    path: str | Path,
    *,
    bins: Iterable[int] = PreprocessConfig.bins,
    a_ia: float = PreprocessConfig.a_ia,
) -> np.ndarray:
    """The observed convergence ``kg + a_ia * ia`` of the tomographic ``bins`` (1-based, as in
    ``stage3_lensing{b}``) of one map file, as a float32 array (n_bins, 12·nside²) in HEALPix
    RING order; ``a_ia = 0`` reads ``kg`` only.
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
    v1, v11 = dataset_name(probe, b), dataset_name(probe, b, layout="v1.1")
    for key in (v1, v11):  # v1 and v1.1 layouts
        if key in f:
            break
    else:
        raise CosmoGridError(
            f"{path}: bin {b} was asked for, but neither {v1} nor {v11} exists "
            f"(bins present: {_bins_present(f, probe)}); change the bins setting"
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
    for group in (probe, f"{_V11_PREFIX}{probe}"):
        if group in f and isinstance(f[group], h5py.Group):
            for name in f[group]:
                suffix = name.removeprefix(_SAMPLE)
                if name.startswith(_SAMPLE) and suffix.isdigit():
                    found.add(int(suffix))
    return sorted(found)


def _last_component(path_par: bytes | str) -> str:
    text = path_par.decode() if isinstance(path_par, bytes) else str(path_par)
    return text.rstrip("/").rsplit("/", 1)[-1]


def _perm_index(perm_dir: Path) -> int:
    suffix = perm_dir.name.removeprefix("perm_")
    if not suffix.isdigit():
        raise CosmoGridError(f"{perm_dir}: expected a folder named perm_NNNN")
    return int(suffix)


def map_source(path: str | Path) -> str:
    """The patch ``source``: "simulated" (a map with a ``simulator`` attr) or "cosmogrid"."""
    with h5py.File(path, "r") as f:
        return "simulated" if "simulator" in f.attrs else "cosmogrid"


def map_header(path: str | Path, *, bins: Iterable[int]) -> dict[str, Any] | None:
    """The raw attributes of a v1 map file that holds ``kg`` for every bin of ``bins``;
    None when the file is absent, unreadable or lacks one of them (the simulator's resume test).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            if not all(dataset_name("kg", b) in f for b in bins):
                return None
            return dict(f.attrs.items())
    except OSError:
        return None


# ------------------------------------------------------------------------------------ writing


def write_map(
    path: str | Path,
    kappa: np.ndarray,
    attrs: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write one v1 map file atomically: ``kg`` from ``kappa`` (n_bins, npix), zero ``ia``
    and ``dg``, float32 with :data:`MAP_H5_OPTIONS`; then the attributes ``attrs`` and
    ``extra``."""
    zeros = np.zeros(kappa.shape[1], dtype=np.float32)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for b in range(1, kappa.shape[0] + 1):
            kg, ia, dg = (dataset_name(p, b) for p in PROBES)
            f.create_dataset(kg, data=kappa[b - 1], dtype=np.float32, **MAP_H5_OPTIONS)
            f.create_dataset(ia, data=zeros, **MAP_H5_OPTIONS)
            f.create_dataset(dg, data=zeros, **MAP_H5_OPTIONS)
        f.attrs.update(dict(attrs))
        f.attrs.update(dict(extra or {}))


def write_metainfo(
    path: str | Path,
    rows: Sequence[Mapping[str, Any]],
    attrs: Mapping[str, Any],
    *,
    fields: Sequence[str],
) -> None:
    """Write a metainfo file atomically: ``parameters/grid`` with one row per mapping of
    ``rows`` (the float ``fields`` and a ``path_par`` string), an empty
    ``parameters/fiducial`` of the same dtype, and the file attributes ``attrs``."""
    dtype = metainfo_dtype(fields)
    table = np.zeros(len(rows), dtype=dtype)
    for i, row in enumerate(rows):
        for k in fields:
            table[k][i] = row[k]
        table["path_par"][i] = row["path_par"].encode("ascii")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset(f"parameters/{SETS[0]}", data=table)
        f.create_dataset(f"parameters/{SETS[1]}", shape=(0,), dtype=dtype)
        f.attrs.update(dict(attrs))
