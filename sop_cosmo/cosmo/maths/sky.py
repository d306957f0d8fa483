"""Sphere-to-patch maths: gnomonic patch geometry, shape noise, smoothing, the split, and the
permuted-label null.

Patches are cut by *gathering* precomputed HEALPix pixel indices (one projection per geometry,
not one per patch). Splits are by cosmology: all permutations of a cosmology land in the same
split. Pure: no file I/O (the stage :mod:`sop_cosmo.cosmo.stages.preprocess` reads and writes).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import healpy as hp
import numpy as np

from sop_cosmo.cosmo.config import NOISE_MODELS, SPLITS, PreprocessConfig

__all__ = [
    "PatchGeometry",
    "add_shape_noise",
    "label_permutation",
    "patch_geometry",
    "random_dihedral",
    "smooth",
    "split_by_cosmology",
]

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


def split_by_cosmology(
    ids: Sequence[int],
    fractions: Sequence[float] = PreprocessConfig.fractions,
    seed: int = PreprocessConfig.seed,
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
    train, val, test = SPLITS
    labels = [train] * n_train + [val] * n_val + [test] * n_test
    return {int(c): s for c, s in zip(order, labels, strict=True)}


#: Stream tag of the label permutation's generator, so it shares no stream with the split's
#: (``default_rng(seed)``) or a map's noise (``default_rng([seed, cosmology, perm])``).
_PERMUTE_STREAM = 0x7065726D


def label_permutation(split_of: dict[int, str], seed: int) -> dict[int, int]:
    """The permuted-label null: each training cosmology gets the targets of another one.

    Parameters
    ----------
    split_of : dict
        Split of each cosmology id (:func:`split_by_cosmology`).
    seed : int
        The preprocess seed.

    Returns
    -------
    dict
        ``{training cosmology: cosmology whose targets it carries}``, a derangement of the
        training cosmologies (no one keeps its own; uniform over derangements, drawn by
        rejection). Validation and test cosmologies are not in it: they keep their own
        targets, so a model that learnt nothing true has no skill on them.
    """
    train = sorted(c for c, s in split_of.items() if s == SPLITS[0])
    if len(train) < 2:
        raise ValueError(
            f"permute_labels: {len(train)} training cosmology cannot be given another's "
            "labels; use at least 2 (more cosmologies or a larger train fraction)"
        )
    rng = np.random.default_rng([int(seed), _PERMUTE_STREAM])
    ids = np.asarray(train)
    while True:  # a random permutation is a derangement with probability ≈ 1/e
        order = rng.permutation(len(ids))
        if (order != np.arange(len(ids))).all():
            return {int(c): int(s) for c, s in zip(ids, ids[order], strict=True)}


def random_dihedral(patches: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each patch (…, H, W) turned by a random multiple of 90° and randomly flipped."""
    out = np.empty_like(patches)
    turns = rng.integers(0, 4, len(patches))
    flips = rng.integers(0, 2, len(patches))
    for i, (k, flip) in enumerate(zip(turns, flips, strict=True)):
        p = np.rot90(patches[i], k, axes=(-2, -1))
        out[i] = p[..., ::-1] if flip else p
    return out
