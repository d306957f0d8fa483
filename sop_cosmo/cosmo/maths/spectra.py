"""Flat-sky angular power spectra of convergence patches (``docs/stats.md``).

A batch of κ patches has shape ``(N, C, H, W)`` (``C`` tomographic bins, physical convergence,
not standardised) and a pixel scale in arcminutes.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import fft as sfft

from ._checks import _as_patches, _check_pixel

__all__ = ["DEFAULT_PS_BINS", "ell_bin_edges", "pixel_area_sr", "power_spectrum"]

#: Default number of log-spaced ℓ bins of the power spectrum.
DEFAULT_PS_BINS: int = 10

# Patches per FFT chunk: bounds the complex workspace of power_spectrum.
_FFT_CHUNK = 256
# Relative slack on the outer ℓ edges so the fundamental and Nyquist modes, computed by a
# different float expression than the edges, are not lost to rounding.
_EDGE_SLACK = 1e-9


def pixel_area_sr(pixel_arcmin: float) -> float:
    """Solid angle of one square pixel of side ``pixel_arcmin`` arcminutes, in steradians."""
    side = np.deg2rad(_check_pixel(pixel_arcmin) / 60.0)
    return float(side * side)


# ------------------------------------------------------------------------------ power spectrum


def ell_bin_edges(
    shape: tuple[int, int],
    pixel_arcmin: float,
    n_bins: int = DEFAULT_PS_BINS,
    ell_min: float | None = None,
    ell_max: float | None = None,
) -> NDArray[np.float64]:
    """Log-spaced multipole bin edges used by :func:`power_spectrum`.

    Parameters
    ----------
    shape : tuple of int
        Patch shape (H, W) in pixels.
    pixel_arcmin : float
        Pixel side in arcminutes.
    n_bins : int
        Number of bins.
    ell_min, ell_max : float, optional
        Outer edges.  Defaults: the fundamental mode ``2π / L`` with ``L = max(H, W) Δ`` (the
        smallest non-zero |ℓ| of the grid) and the Nyquist multipole ``π / Δ``.

    Returns
    -------
    numpy.ndarray
        ``n_bins + 1`` increasing edges, geometrically spaced.

    Raises
    ------
    ValueError
        On a non-positive pixel scale or bin count, or ``ell_min >= ell_max``.
    """
    delta = np.sqrt(pixel_area_sr(pixel_arcmin))  # validates pixel_arcmin
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins: expected a positive integer; got {n_bins!r}.")
    h, w = (int(s) for s in shape)
    lo = 2.0 * np.pi / (max(h, w) * delta) if ell_min is None else float(ell_min)
    hi = np.pi / delta if ell_max is None else float(ell_max)
    if not (np.isfinite(lo) and lo > 0):
        raise ValueError(f"ell_min: must be finite and > 0; got {ell_min!r}.")
    if not (np.isfinite(hi) and hi > lo):
        raise ValueError(f"ell_max: must be finite and > ell_min ({lo:g}); got {ell_max!r}.")
    return np.geomspace(lo, hi, int(n_bins) + 1)


def _mode_binning(
    h: int, w: int, delta: float, edges: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Averaging matrix (H * (W//2+1), n_bins) over rfft2 modes, and mode-weighted ℓ centres.

    ``rfft2`` keeps half of the kx axis; every kept column except kx = 0 (and the Nyquist column
    for even W) stands for two modes of the full plane, ±k, with the same |ℓ|.
    """
    ly = 2.0 * np.pi * np.fft.fftfreq(h, d=delta)
    lx = 2.0 * np.pi * np.fft.rfftfreq(w, d=delta)
    ell = np.hypot(ly[:, None], lx[None, :]).ravel()
    mult = np.ones(lx.size)
    mult[1 : (w - 1) // 2 + 1] = 2.0
    mult = np.broadcast_to(mult, (h, lx.size)).ravel()
    lo_edges = edges.copy()
    lo_edges[0] *= 1.0 - _EDGE_SLACK
    lo_edges[-1] *= 1.0 + _EDGE_SLACK
    # Bin i holds edges[i] <= ℓ < edges[i+1]; the slack puts ℓ == ell_max in the last bin.
    idx = np.searchsorted(lo_edges, ell, side="right") - 1
    n_bins = edges.size - 1
    inside = (idx >= 0) & (idx < n_bins) & (ell > 0)
    weights = np.zeros((ell.size, n_bins))
    weights[np.flatnonzero(inside), idx[inside]] = mult[inside]
    counts = weights.sum(0)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        raise ValueError(
            f"n_bins: ℓ bins {empty.tolist()} of edges {np.round(edges, 1).tolist()} contain no "
            f"Fourier mode of a {h}x{w} patch; use fewer bins or a narrower ell_min/ell_max."
        )
    centres = (ell @ weights) / counts
    return weights / counts, centres


def power_spectrum(
    kappa: ArrayLike,
    pixel_arcmin: float,
    n_bins: int = DEFAULT_PS_BINS,
    ell_min: float | None = None,
    ell_max: float | None = None,
    *,
    cross: bool = False,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Flat-sky angular power spectrum of each patch and bin, averaged in ℓ annuli.

    With ``F = fft2(κ)`` (unnormalised DFT) on an H x W patch of pixel side Δ (radians),
    each Fourier mode gives ``Ĉ(ℓ) = Δ² |F(ℓ)|² / (H W)``, so a white-noise field of pixel
    variance σ² has ``C_ℓ = σ² A_pix`` with ``A_pix = Δ²`` in steradians.  Modes are averaged
    with equal weight over each annulus; ℓ = 0 is never used, so the patch mean does not enter.
    No window is applied: the patch is treated as periodic.

    Parameters
    ----------
    kappa : array_like
        Convergence patches, shape (N, C, H, W).
    pixel_arcmin : float
        Pixel side in arcminutes.
    n_bins : int
        Number of log-spaced ℓ bins (edges from :func:`ell_bin_edges`).
    ell_min, ell_max : float, optional
        Outer bin edges; default the fundamental mode ``2π / L`` and the Nyquist ``π / Δ``.
        Modes in the corners beyond ``ell_max`` are not used.
    cross : bool
        When True, return all auto- and cross-spectra between bins, ordered as
        ``numpy.triu_indices(C)``: (0,0), (0,1), ..., (0,C-1), (1,1), ...

    Returns
    -------
    ell : numpy.ndarray
        (n_bins,) mean |ℓ| of the Fourier modes in each bin.
    cl : numpy.ndarray
        (N, C, n_bins) float64, or (N, C(C+1)/2, n_bins) with ``cross=True``.

    Raises
    ------
    ValueError
        If ``kappa`` is not a finite 4-D array, the pixel scale is not positive, or a bin holds
        no Fourier mode (too many bins for the patch size).
    """
    x = _as_patches(kappa, min_side=2)
    edges = ell_bin_edges(x.shape[-2:], pixel_arcmin, n_bins, ell_min, ell_max)
    n, c, h, w = x.shape
    delta = np.sqrt(pixel_area_sr(pixel_arcmin))
    avg, centres = _mode_binning(h, w, delta, edges)
    avg *= delta * delta / (h * w)  # fold the C_ℓ normalisation into the averaging matrix
    pairs = np.triu_indices(c) if cross else (np.arange(c), np.arange(c))
    out = np.empty((n, pairs[0].size, edges.size - 1))
    for start in range(0, n, _FFT_CHUNK):
        f = sfft.rfft2(x[start : start + _FFT_CHUNK].astype(np.float64, copy=False))
        f = f.reshape(f.shape[0], c, -1)
        # Re(F_i conj F_j) = Re_i Re_j + Im_i Im_j; equals |F_i|^2 for i == j.
        prod = f.real[:, pairs[0]] * f.real[:, pairs[1]] + f.imag[:, pairs[0]] * f.imag[:, pairs[1]]
        out[start : start + f.shape[0]] = prod @ avg
    return centres, out
