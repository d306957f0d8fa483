"""Full-sky maps to flat patch files (the ``{train,val,test}.h5`` contract of DESIGN.md §3.2).

For each map: optional shape noise and Gaussian smoothing on the sphere, then gnomonic patches
cut by *gathering* precomputed HEALPix pixel indices (one projection per geometry, not one per
patch), then an append to the split's HDF5 file. One map is in memory at a time.

Splits are by cosmology: all permutations of a cosmology land in the same split.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import healpy as hp
import numpy as np
from tqdm import tqdm

from sop_cosmo._io import atomic_path

from .cosmogrid import MapRecord, find_maps, read_map

__all__ = [
    "NOISE_MODELS",
    "SPLITS",
    "PatchGeometry",
    "add_shape_noise",
    "cosmo_id",
    "patch_geometry",
    "preprocess",
    "smooth",
    "split_by_cosmology",
]

SPLITS = ("train", "val", "test")
#: Shape noise per bin: σ_e per component and galaxies per arcmin² (FACTS.md, DES-Y3-like).
NOISE_MODELS = {"none": None, "des-y3": {"sigma_e": 0.26, "n_gal": 1.67}}
_FIDUCIAL_ID_OFFSET = 10_000_000
_CENTRE_NUDGE_RAD = 1e-7


@dataclass(frozen=True)
class PatchGeometry:
    """Where every patch pixel comes from on the sphere.

    Attributes
    ----------
    nside : int
        nside of the maps.
    patch_size : int
        Pixels per patch side.
    pixel_arcmin : float
        Flat pixel scale.
    centres_nside : int
        nside of the HEALPix grid whose pixel centres are the patch centres.
    pixels : numpy.ndarray
        (n_patches, patch_size, patch_size) HEALPix RING indices; row 0 is north.
    centres : numpy.ndarray
        (n_patches, 2) colatitude and longitude of the centres, radians.
    """

    nside: int
    patch_size: int
    pixel_arcmin: float
    centres_nside: int
    pixels: np.ndarray
    centres: np.ndarray

    @property
    def n_patches(self) -> int:
        """Patches per map."""
        return len(self.pixels)

    def cut(self, maps: np.ndarray) -> np.ndarray:
        """Patches (n_patches, C, P, P) of maps (C, npix), by one gather."""
        return np.ascontiguousarray(maps[:, self.pixels].transpose(1, 0, 2, 3))


def patch_geometry(
    nside: int,
    patch_size: int,
    pixel_arcmin: float | None = None,
    centres_nside: int | None = None,
) -> PatchGeometry:
    """Precompute the gnomonic pixel indices of every patch.

    Parameters
    ----------
    nside : int
        nside of the maps.
    patch_size : int
        Pixels per side.
    pixel_arcmin : float, optional
        Flat pixel scale; defaults to the map's pixel scale.
    centres_nside : int, optional
        nside of the centre grid. Defaults to the finest grid whose spacing is at least the patch
        side, so neighbouring patches barely overlap.
    """
    if nside < 1 or nside & (nside - 1):
        raise ValueError(f"nside: expected a power of two, got {nside}")
    if patch_size < 2:
        raise ValueError(f"patch_size: expected at least 2 pixels, got {patch_size}")
    if pixel_arcmin is None:
        pixel_arcmin = hp.nside2resol(nside, arcmin=True)
    if pixel_arcmin <= 0:
        raise ValueError(f"pixel_arcmin: expected a positive scale, got {pixel_arcmin}")
    side = np.radians(patch_size * pixel_arcmin / 60.0)
    if side >= np.radians(90.0):
        raise ValueError(
            f"patch_size × pixel_arcmin = {np.degrees(side):.1f}°: too large for a gnomonic "
            "patch; use fewer or smaller pixels"
        )
    if centres_nside is None:
        centres_nside = 1
        while hp.nside2resol(2 * centres_nside) >= side:
            centres_nside *= 2
    theta, phi = hp.pix2ang(centres_nside, np.arange(hp.nside2npix(centres_nside)))
    # Coarse centres fall exactly on fine pixel corners, and at z = ±2/3 healpy's ang2pix can
    # return a pixel ~3 pixels away; a 0.02″ nudge takes every centre off those ties.
    theta = theta + _CENTRE_NUDGE_RAD

    # Tangent-plane offsets; a pixel's direction is e_r + x·e_east + y·e_north, normalised.
    pix = np.radians(pixel_arcmin / 60.0)
    offsets = (np.arange(patch_size) - (patch_size - 1) / 2) * pix
    x = offsets[None, :]  # east, along columns
    y = -offsets[:, None]  # north, up the rows
    st, ct, sp, cp = np.sin(theta), np.cos(theta), np.sin(phi), np.cos(phi)
    e_r = np.stack([st * cp, st * sp, ct], -1)[:, None, None]  # (n, 1, 1, 3)
    e_east = np.stack([-sp, cp, np.zeros_like(sp)], -1)[:, None, None]
    e_north = np.stack([-ct * cp, -ct * sp, st], -1)[:, None, None]
    vec = e_r + x[..., None] * e_east + y[..., None] * e_north  # (n, P, P, 3)
    pixels = hp.vec2pix(nside, vec[..., 0], vec[..., 1], vec[..., 2])
    centres = np.stack([theta, phi], -1)
    return PatchGeometry(nside, patch_size, float(pixel_arcmin), centres_nside, pixels, centres)


def add_shape_noise(
    maps: np.ndarray, noise: str, rng: np.random.Generator, nside: int
) -> np.ndarray:
    """Gaussian shape noise per pixel, σ_pix = σ_e / sqrt(n_gal · A_pix[arcmin²])."""
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise: expected one of {tuple(NOISE_MODELS)}, got {noise!r}")
    model = NOISE_MODELS[noise]
    if model is None:
        return maps
    area = hp.nside2pixarea(nside, degrees=True) * 3600.0
    sigma = model["sigma_e"] / math.sqrt(model["n_gal"] * area)
    return maps + rng.normal(0.0, sigma, size=maps.shape).astype(maps.dtype)


def smooth(maps: np.ndarray, fwhm_arcmin: float) -> np.ndarray:
    """Gaussian smoothing in harmonic space (healpy), per bin; 0 returns the maps unchanged."""
    if fwhm_arcmin < 0:
        raise ValueError(f"smoothing_arcmin: expected ≥ 0, got {fwhm_arcmin}")
    if fwhm_arcmin == 0:
        return maps
    fwhm = np.radians(fwhm_arcmin / 60.0)
    return np.stack([hp.smoothing(m, fwhm=fwhm) for m in maps]).astype(maps.dtype)


def cosmo_id(record: MapRecord) -> int:
    """Integer id of a record's cosmology: the grid index, or an offset id for fiducial sets."""
    suffix = record.cosmo.removeprefix("cosmo_")
    if record.set == "grid" and suffix.isdigit():
        return int(suffix)
    # Fiducial names (cosmo_fiducial, cosmo_delta_s8_p, ...): a stable id from a checksum.
    return _FIDUCIAL_ID_OFFSET + zlib.crc32(f"{record.set}/{record.cosmo}".encode())


def split_by_cosmology(
    ids: Sequence[int], fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[int, str]:
    """Assign each distinct cosmology id to a split; every split gets at least one."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"split: expected three positive fractions summing to 1, got {fractions}")
    unique = sorted(set(int(i) for i in ids))
    if len(unique) < 3:
        raise ValueError(
            f"split: {len(unique)} cosmologies cannot fill train, val and test; "
            "simulate or download at least 3"
        )
    order = np.random.default_rng(seed).permutation(unique)
    n_val = max(1, round(fractions[1] * len(unique)))
    n_test = max(1, round(fractions[2] * len(unique)))
    n_train = len(unique) - n_val - n_test
    if n_train < 1:
        raise ValueError(f"split: {len(unique)} cosmologies leave none for train; add more")
    labels = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    return {int(c): s for c, s in zip(order, labels, strict=True)}


def preprocess(
    root: str | Path,
    out_dir: str | Path,
    *,
    patch_size: int,
    noise: str = "none",
    smoothing_arcmin: float = 0.0,
    bins: Sequence[int] = (1, 2, 3, 4),
    seed: int = 0,
    pixel_arcmin: float | None = None,
    centres_nside: int | None = None,
    params: Sequence[str] = ("Om", "s8"),
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    augment: bool = False,
    a_ia: float = 0.0,
    variant: str = "nobaryons",
    sets: Sequence[str] = ("grid",),
    metainfo: str | Path | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Cut every map under ``root`` into patches and write ``{train,val,test}.h5``.

    Parameters
    ----------
    root : str or Path
        Folder containing ``CosmoGrid/`` (real or simulated).
    out_dir : str or Path
        Output folder for the three split files.
    patch_size : int
        Pixels per patch side.
    noise : {"none", "des-y3"}
        Shape noise added on the sphere before smoothing.
    smoothing_arcmin : float
        FWHM of the Gaussian smoothing; 0 for none.
    bins : sequence of int
        Tomographic bins, 1-based.
    seed : int
        Seeds the split, the noise (per map, independent of processing order) and augmentation.
    pixel_arcmin, centres_nside : optional
        Patch geometry, see :func:`patch_geometry`.
    params : sequence of str
        Metainfo fields stored as targets.
    fractions : three floats
        Train/val/test fractions of the cosmologies.
    augment : bool
        Apply a random rotation by a multiple of 90° and a random flip to each training patch
        (the sky is statistically isotropic and parity-invariant).
    a_ia : float
        Intrinsic-alignment amplitude (κ = kg + a_ia·ia).
    variant, sets, metainfo : optional
        Passed to :func:`~sop_cosmo.cosmo.cosmogrid.find_maps`.
    progress : bool
        Show a progress bar over maps.

    Returns
    -------
    dict
        Number of patches written per split.
    """
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise: expected one of {tuple(NOISE_MODELS)}, got {noise!r}")
    if smoothing_arcmin < 0:
        raise ValueError(f"smoothing_arcmin: expected ≥ 0, got {smoothing_arcmin}")
    bins = [int(b) for b in bins]
    records = find_maps(root, variant=variant, sets=sets, metainfo=metainfo)
    missing = [p for p in params if p not in records[0].params]
    if missing:
        raise ValueError(
            f"params: {missing} not in the metainfo fields {sorted(records[0].params)}"
        )
    ids = [cosmo_id(r) for r in records]
    split_of = split_by_cosmology(ids, fractions, seed)
    first = read_map(records[0].path, bins=bins, a_ia=a_ia)
    nside = hp.npix2nside(first.shape[1])
    geometry = patch_geometry(nside, patch_size, pixel_arcmin, centres_nside)
    attrs = {
        "pixel_arcmin": geometry.pixel_arcmin,
        "patch_size": patch_size,
        "nside": nside,
        "bins": bins,
        "smoothing_arcmin": float(smoothing_arcmin),
        "noise": noise,
        "source": _source(records[0].path),
        "centres_nside": geometry.centres_nside,
        "a_ia": float(a_ia),
        "variant": variant,
        "seed": seed,
        "augment": augment,
    }
    out_dir = Path(out_dir)
    counts = dict.fromkeys(SPLITS, 0)
    with contextlib.ExitStack() as stack:
        files = {}
        for split in SPLITS:
            tmp = stack.enter_context(atomic_path(out_dir / f"{split}.h5"))
            files[split] = stack.enter_context(h5py.File(tmp, "w"))
            _create(files[split], len(bins), patch_size, list(params), attrs)
        for record, cid in tqdm(
            list(zip(records, ids, strict=True)), desc="preprocess", disable=not progress
        ):
            maps = first if record is records[0] else read_map(record.path, bins=bins, a_ia=a_ia)
            if maps.shape[1] != first.shape[1]:
                raise ValueError(f"{record.path}: nside differs from the first map's {nside}")
            rng = np.random.default_rng([seed, cid, record.perm])
            maps = smooth(add_shape_noise(maps, noise, rng, nside), smoothing_arcmin)
            patches = geometry.cut(maps)
            split = split_of[cid]
            if augment and split == "train":
                patches = _dihedral(patches, rng)
            values = np.array([record.params[p] for p in params], dtype=np.float32)
            _append(files[split], patches, values, cid, record.perm)
            counts[split] += len(patches)
        for f in files.values():
            f.close()
    return counts


def _create(f: h5py.File, n_bins: int, size: int, names: list[str], attrs: dict) -> None:
    f.create_dataset(
        "kappa", (0, n_bins, size, size), "f4", maxshape=(None, n_bins, size, size),
        chunks=(1, n_bins, size, size),
    )  # fmt: skip
    f.create_dataset("params", (0, len(names)), "f4", maxshape=(None, len(names)))
    f["params"].attrs["names"] = names
    f.create_dataset("cosmo_id", (0,), "i8", maxshape=(None,))
    f.create_dataset("perm", (0,), "i8", maxshape=(None,))
    f.create_dataset("patch_index", (0,), "i8", maxshape=(None,))
    for key, value in attrs.items():
        f.attrs[key] = value


def _append(f: h5py.File, patches: np.ndarray, values: np.ndarray, cid: int, perm: int) -> None:
    n, start = len(patches), f["kappa"].shape[0]
    for name in ("kappa", "params", "cosmo_id", "perm", "patch_index"):
        f[name].resize(start + n, axis=0)
    f["kappa"][start:] = patches
    f["params"][start:] = np.broadcast_to(values, (n, len(values)))
    f["cosmo_id"][start:] = cid
    f["perm"][start:] = perm
    f["patch_index"][start:] = np.arange(n)


def _dihedral(patches: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty_like(patches)
    turns = rng.integers(0, 4, len(patches))
    flips = rng.integers(0, 2, len(patches))
    for i, (k, flip) in enumerate(zip(turns, flips, strict=True)):
        p = np.rot90(patches[i], k, axes=(-2, -1))
        out[i] = p[..., ::-1] if flip else p
    return out


def _source(path: Path) -> str:
    with h5py.File(path, "r") as f:
        return "simulated" if "simulator" in f.attrs else "cosmogrid"
