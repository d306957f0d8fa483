"""σ_noise per tomographic bin: the fixed scale of ν = κ_smoothed / σ_noise.

The void/cluster typing of the analysis can work in noise units (peaks ν ≥ ν_c, troughs
ν ≤ −ν_v), with one σ per bin for every patch, so that the typing does not move with each
patch's own spread (which tracks σ8). Preprocess records the σ per bin after smoothing:

* with shape noise, the standard deviation of the smoothed noise alone
  (:func:`shape_noise_sigma`, from the noise model and the smoothing beam);
* without noise, the ensemble standard deviation of the smoothed κ of (a fixed, evenly spread
  subset of) the training maps (:func:`ensemble_sigma`, :func:`reference_rows`).

Pure maths: no file I/O (the stage reads the maps and passes them in).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import healpy as hp
import numpy as np
from numpy.typing import ArrayLike, NDArray

from sop_cosmo.cosmo.config import NOISE_MODELS, SPLITS
from sop_cosmo.cosmo.maths.selection import map_indices

__all__ = [
    "REFERENCE_MAPS",
    "ensemble_sigma",
    "pixel_noise_sigma",
    "reference_rows",
    "shape_noise_sigma",
    "sigma_noise",
]

#: Training maps whose smoothed κ sets σ when there is no noise (evenly spread over them).
REFERENCE_MAPS = 32


def pixel_noise_sigma(noise: str, nside: int) -> float:
    """Shape-noise σ of one HEALPix pixel, σ_e / sqrt(n_gal · A_pix[arcmin²]) (0 for "none")."""
    if noise not in NOISE_MODELS:
        raise ValueError(f"noise: expected one of {tuple(NOISE_MODELS)}, got {noise!r}")
    model = NOISE_MODELS[noise]
    if model is None:
        return 0.0
    area = hp.nside2pixarea(int(nside), degrees=True) * 3600.0
    return float(model["sigma_e"] / math.sqrt(model["n_gal"] * area))


def shape_noise_sigma(
    noise: str, nside: int, smoothing_arcmin: float, n_bins: int
) -> NDArray[np.float64]:
    """σ of the shape noise per bin after Gaussian smoothing of FWHM ``smoothing_arcmin``.

    White noise of pixel variance σ_pix² has the angular spectrum C_ℓ = σ_pix² Ω_pix; smoothing
    multiplies it by the beam b_ℓ² up to ℓ_max = 3·nside − 1 (healpy's default, as in
    :func:`~sop_cosmo.cosmo.maths.sky.smooth`), so σ² = Σ_ℓ (2ℓ + 1)/(4π) C_ℓ b_ℓ². Without
    smoothing σ = σ_pix. Every bin has the same galaxy density, hence the same σ.

    Returns
    -------
    numpy.ndarray
        (n_bins,) float64.
    """
    if smoothing_arcmin < 0:
        raise ValueError(f"smoothing_arcmin: expected ≥ 0, got {smoothing_arcmin}")
    if int(n_bins) < 1:
        raise ValueError(f"n_bins: expected ≥ 1, got {n_bins}")
    sigma = pixel_noise_sigma(noise, nside)
    if smoothing_arcmin > 0 and sigma > 0:
        lmax = 3 * int(nside) - 1
        beam = hp.gauss_beam(np.radians(smoothing_arcmin / 60.0), lmax=lmax)
        ell = np.arange(lmax + 1)
        omega = hp.nside2pixarea(int(nside))
        sigma *= math.sqrt(omega * float(np.sum((2 * ell + 1) * beam**2)) / (4 * math.pi))
    return np.full(int(n_bins), sigma, dtype=np.float64)


def ensemble_sigma(patches: Iterable[ArrayLike]) -> NDArray[np.float64]:
    """Ensemble standard deviation per bin of every pixel of every patch given.

    Parameters
    ----------
    patches : iterable of array_like
        Blocks (n, B, H, W) (or (B, ...) maps), e.g. the patches of several maps; streamed,
        so the blocks need not fit in memory together.

    Returns
    -------
    numpy.ndarray
        (B,) σ about the pooled mean, in float64.
    """
    count, total, squares = 0, None, None
    for block in patches:
        a = np.asarray(block, dtype=np.float64)
        a = a[None] if a.ndim == 2 else a
        if a.ndim < 2:
            raise ValueError(f"patches: expected blocks (n, B, ...), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("patches: contain NaN or infinite values")
        flat = np.moveaxis(a, 1, 0).reshape(a.shape[1], -1)
        total = flat.sum(1) if total is None else total + flat.sum(1)
        squares = (flat**2).sum(1) if squares is None else squares + (flat**2).sum(1)
        count += flat.shape[1]
    if total is None or count == 0:
        raise ValueError("patches: no pixels given; σ of an empty ensemble is undefined")
    mean = total / count
    var = np.maximum(squares / count - mean**2, 0.0)
    sigma = np.sqrt(var)
    if not (sigma > 0).all():
        raise ValueError(f"patches: constant in bins {np.flatnonzero(~(sigma > 0)).tolist()}")
    return sigma


def reference_rows(splits: Sequence[str], max_maps: int = REFERENCE_MAPS) -> NDArray[np.int64]:
    """Indices of the training maps (``splits[i] == "train"``) that set σ without noise:
    at most ``max_maps``, spread evenly, the same whichever chunk of the maps a job cuts."""
    train = np.flatnonzero(np.asarray(splits) == SPLITS[0])
    if train.size == 0:
        raise ValueError("splits: no training map; σ of the training ensemble is undefined")
    return train[map_indices(train.size, max_maps)]


def sigma_noise(
    noise: str,
    nside: int,
    smoothing_arcmin: float,
    n_bins: int,
    reference: Callable[[], Iterable[ArrayLike]] | None = None,
) -> NDArray[np.float64]:
    """σ_noise per bin (the preprocess file attribute ``sigma_noise``).

    With a noise model, :func:`shape_noise_sigma`; with ``noise="none"``,
    :func:`ensemble_sigma` of ``reference()``, which yields the smoothed patches of the
    reference training maps (called only then, so nothing is read when noise sets σ).
    """
    if NOISE_MODELS.get(noise, ...) is not None or noise not in NOISE_MODELS:
        return shape_noise_sigma(noise, nside, smoothing_arcmin, n_bins)
    if reference is None:
        raise ValueError("reference: noise 'none' takes σ from training maps; pass them")
    sigma = ensemble_sigma(reference())
    if sigma.shape != (int(n_bins),):
        raise ValueError(f"reference: {sigma.size} bins, expected {n_bins}")
    return sigma
