"""Stage ``simulate``: a built-in, offline CosmoGridV1-like grid of lognormal convergence maps.

With ``field="gaussian"`` the maps are Gaussian instead, with the same κ spectra C_ℓ^κκ (not
the spectra of the lognormal's underlying Gaussian field) and the same unit normals: the null
of non-Gaussian structure. The map and metainfo attribute ``field`` says which.

The maps are written in exactly the CosmoGridV1 layout (docs/contracts.md, "CosmoGridV1
layout"), by the module the reader uses (:mod:`sop_cosmo.cosmo.contracts.cosmogrid`), so the
project's reader treats them like the real data: one map file per cosmology and permutation of
the grid set (``kg`` holds κ for the four bins, ``ia`` and ``dg`` zeros), then the metainfo
file with one ``parameters/grid`` row per cosmology and an empty ``parameters/fiducial``.

The physics lives in :mod:`sop_cosmo.cosmo.maths.cosmology` (the cosmology draws) and
:mod:`sop_cosmo.cosmo.maths.lognormal` (n(z), spectra, shifts, maps); ``docs/simulate.md`` has
the formulas and the file layout.

With ``metainfo_only`` the simulator draws the cosmologies and writes the metainfo alone (no
maps, attribute ``metainfo_only``): at CosmoGridV1's size (2,500 cosmologies × 7 perms) that is
enough for ``snakemake -n`` to plan the whole workflow, chunked preprocessing included.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sop_cosmo._progress import progress_bar
from sop_cosmo.cosmo.config import SIM_FIELDS, SimulateConfig, resolve
from sop_cosmo.cosmo.contracts.cosmogrid import (
    COSMO_GLOB,
    METAINFO_RELPATH,
    PERM_GLOB,
    SETS,
    VARIANTS,
    cosmo_folder,
    map_filename,
    map_header,
    path_par,
    perm_folder,
    set_relpath,
    write_map,
    write_metainfo,
)
from sop_cosmo.cosmo.maths.cosmology import (
    PARAMETER_NAMES,
    check_nside,
    check_seed,
    check_vary,
    draw_cosmologies,
    positive_int,
)
from sop_cosmo.cosmo.maths.lognormal import (
    BIN_MEANS,
    SHIFT_HEURISTIC,
    draw_gaussian_maps,
    draw_maps,
    gaussian_spectra,
    kappa_cls,
    kappa_spectra,
    lognormal_shifts,
    redshift_bins,
)

__all__ = ["SIMULATOR_NAME", "SIMULATOR_VERSION", "simulate_grid"]

SIMULATOR_NAME = "sop-cosmo lognormal"
#: Bumped whenever the maps a given seed produces change; resuming skips only equal versions.
SIMULATOR_VERSION = 1
# The simulator writes the grid set, maps without baryons.
_SET, _VARIANT = SETS[0], VARIANTS[0]


def _map_seed(seed: int, cosmo_index: int, perm: int) -> np.random.SeedSequence:
    # one independent stream per (cosmology, perm): the child (i, j) of the spawn tree of
    # SeedSequence(seed), i.e. SeedSequence(seed).spawn(i + 1)[i].spawn(j + 1)[j]; so a map
    # does not depend on how many others are simulated
    return np.random.SeedSequence(seed, spawn_key=(cosmo_index, perm))


def _map_attrs(
    params: Mapping[str, float], nside: int, seed: int, cosmo_index: int, perm: int, field: str
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "field": field,
        "nside": nside,
        "seed": seed,
        "seed_spawn_key": np.array([cosmo_index, perm], dtype=np.int64),
        "simulator": SIMULATOR_NAME,
        "simulator_version": SIMULATOR_VERSION,
        "lognormal_shift": SHIFT_HEURISTIC if field == "lognormal" else "none: Gaussian maps",
    }
    attrs.update({k: float(params[k]) for k in PARAMETER_NAMES})
    return attrs


def _already_written(path: Path, attrs: Mapping[str, Any]) -> bool:
    header = map_header(path, bins=range(1, len(BIN_MEANS) + 1))
    if header is None:
        return False
    if header.get("field", "lognormal") != attrs["field"]:  # maps before the option: lognormal
        return False
    for key in ("nside", "seed", "simulator_version", *PARAMETER_NAMES[:-1]):
        if key not in header or header[key] != attrs[key]:
            return False
    return np.array_equal(header.get("seed_spawn_key", []), attrs["seed_spawn_key"])


def _check_no_strays(grid: Path, n_cosmologies: int, n_perms: int) -> None:
    if not grid.is_dir():
        return
    wanted = {cosmo_folder(i) for i in range(1, n_cosmologies + 1)}
    perms = {perm_folder(j) for j in range(n_perms)}
    strays = [d for d in sorted(grid.glob(COSMO_GLOB)) if d.name not in wanted]
    for name in sorted(wanted):
        if (grid / name).is_dir():
            strays += [d for d in sorted((grid / name).glob(PERM_GLOB)) if d.name not in perms]
    if strays:
        shown = ", ".join(str(s) for s in strays[:3])
        raise ValueError(
            f"out_root already holds {len(strays)} map folder(s) outside this grid "
            f"(e.g. {shown}); pass an empty out_root or remove them"
        )


def simulate_grid(
    out_root: str | os.PathLike,
    config: SimulateConfig | None = None,
    *,
    progress: bool = True,
    resume: bool = True,
    **overrides: Any,
) -> Path:
    """Simulate a CosmoGridV1-like grid of lognormal convergence maps and write it to disk.

    Writes the map of permutation j = 0…n_perms−1 of grid cosmology i = 1…n_cosmologies, then
    the metainfo file (last, so its presence means the grid is complete), all under
    ``out_root`` in the CosmoGridV1 layout. Every file is written atomically.

    Parameters
    ----------
    out_root : str or path-like
        Root folder (created if missing). It must not hold other cosmo/perm folders.
    config : SimulateConfig, optional
        The settings (default ``SimulateConfig()``): ``n_cosmologies`` (drawn by
        :func:`~sop_cosmo.cosmo.maths.cosmology.draw_cosmologies`), ``n_perms`` (independent
        maps per cosmology), ``nside`` (a power of two; spectra go up to ℓ = 3·nside − 1),
        ``seed`` (seeds the Sobol draw and, through ``SeedSequence(seed, spawn_key=(i, j))``,
        map j of cosmology i), ``vary`` (parameters among ``H0, Ob, ns, w0`` drawn from
        their priors too), ``metainfo_only`` (write no maps) and ``field`` ("lognormal", or
        "gaussian": Gaussian maps with the same C_ℓ^κκ).
    progress : bool, optional
        Show a tqdm progress bar over the maps.
    resume : bool, optional
        Skip maps already on disk with the same seed, nside, cosmology and simulator version
        (they would be rewritten byte-identical).
    **overrides
        Fields of :class:`~sop_cosmo.cosmo.config.SimulateConfig` that replace ``config``'s.

    Returns
    -------
    pathlib.Path
        Path of the metainfo file.
    """
    cfg = resolve(SimulateConfig, config, overrides)
    n_cosmologies = positive_int(cfg.n_cosmologies, "n_cosmologies", "e.g. n_cosmologies=8")
    n_perms = positive_int(cfg.n_perms, "n_perms", "maps per cosmology, e.g. n_perms=2")
    nside = check_nside(cfg.nside)
    seed = check_seed(cfg.seed)
    names = check_vary(cfg.vary)
    if cfg.field not in SIM_FIELDS:
        raise ValueError(f"field: expected one of {SIM_FIELDS}, got {cfg.field!r}")
    gaussian = cfg.field == "gaussian"
    root = Path(out_root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"out_root must be a folder; {root} is a file")
    grid = root / set_relpath(_SET)
    _check_no_strays(grid, n_cosmologies, n_perms)

    cosmologies = draw_cosmologies(n_cosmologies, seed, names)
    z, nz = redshift_bins()
    lmax = 3 * nside - 1
    rows = [
        {**params, "path_par": path_par(_SET, cosmo_folder(i))}
        for i, params in enumerate(cosmologies, start=1)
    ]
    with progress_bar(
        total=0 if cfg.metainfo_only else n_cosmologies * n_perms,
        disable=not progress or cfg.metainfo_only,
        desc="simulate",
        unit="map",
    ) as bar:
        for i, params in enumerate([] if cfg.metainfo_only else cosmologies, start=1):
            folder = cosmo_folder(i)
            todo = []
            for j in range(n_perms):
                path = grid / folder / perm_folder(j) / map_filename(_VARIANT)
                attrs = _map_attrs(params, nside, seed, i, j, cfg.field)
                if resume and _already_written(path, attrs):
                    bar.update(1)
                else:
                    todo.append((j, path, attrs))
            if not todo:
                continue
            cls = kappa_cls(params, lmax, z, nz)
            extra: dict[str, Any] = {"lmax": lmax, "nz_bin_means": np.asarray(BIN_MEANS)}
            if gaussian:
                _, sqrt_cl, _, clipped = kappa_spectra(cls)
                extra["kappa_cl_clipped_fraction"] = clipped
            else:
                shifts = lognormal_shifts(params, z, nz)
                _, sqrt_cl, variance, clipped = gaussian_spectra(cls, shifts)
                extra.update(lognormal_lambda=shifts, gaussian_cl_clipped_fraction=clipped)
            for j, path, attrs in todo:
                rng = np.random.default_rng(_map_seed(seed, i, j))
                if gaussian:
                    kappa = draw_gaussian_maps(sqrt_cl, nside, rng)
                else:
                    kappa = draw_maps(sqrt_cl, variance, shifts, nside, rng)
                write_map(path, kappa, attrs, extra)
                bar.update(1)

    meta = root / METAINFO_RELPATH
    write_metainfo(
        meta,
        rows,
        {
            "simulator": SIMULATOR_NAME,
            "simulator_version": SIMULATOR_VERSION,
            "seed": seed,
            "nside": nside,
            "n_perms": n_perms,
            "vary": ",".join(names),
            "lognormal_shift": SHIFT_HEURISTIC if not gaussian else "none: Gaussian maps",
            "metainfo_only": cfg.metainfo_only,
            "field": cfg.field,
        },
        fields=PARAMETER_NAMES,
    )
    return meta
