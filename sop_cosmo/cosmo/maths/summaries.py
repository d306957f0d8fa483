"""Classical weak-lensing summary statistics of flat convergence patches.

These are the features of the classical baseline regressor ("standard cosmology statistics"):
the flat-sky power spectrum (:mod:`.spectra`), peak and minimum counts (:mod:`.extrema`), and
the one-point moments, computed for a batch of κ patches of shape ``(N, C, H, W)`` (``C``
tomographic bins, physical convergence, not standardised) with a pixel scale in arcminutes.
See ``docs/stats.md`` for the definitions and the normalisation convention.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._checks import _as_patches, _check_nu_bins
from .extrema import Extrema, _extrema
from .spectra import DEFAULT_PS_BINS, power_spectrum

__all__ = [
    "DEFAULT_NU_BINS",
    "MOMENT_NAMES",
    "minima_counts",
    "moments",
    "peak_counts",
    "summary_statistics",
]

#: Default ν = κ/σ bin edges of the peak and minimum histograms: width 0.5, centres -3 ... 5.
DEFAULT_NU_BINS: NDArray[np.float64] = np.linspace(-3.25, 5.25, 18)
#: Order of the last axis of :func:`moments`.
MOMENT_NAMES: tuple[str, ...] = ("mean", "var", "skew", "kurt")


# -------------------------------------------------------------------------------- histograms


def _sigma(x: NDArray, sigma: ArrayLike | None) -> NDArray[np.float64]:
    """σ of shape (N, C): per-patch std, or the given value broadcast to (N, C)."""
    n, c = x.shape[:2]
    if sigma is None:
        std = x.std(axis=(-2, -1), dtype=np.float64)
        if np.any(std <= 0):
            raise ValueError(
                "kappa: a patch/bin is constant (std 0), so ν = κ/σ is undefined; pass sigma."
            )
        return std
    s = np.asarray(sigma, dtype=np.float64)
    if s.ndim == 1 and s.size == c:
        s = s[None, :]  # one value per tomographic bin
    try:
        s = np.broadcast_to(s, (n, c))
    except ValueError as exc:
        raise ValueError(
            f"sigma: expected a scalar, (C,) = ({c},) or (N, C) values; got shape {s.shape}."
        ) from exc
    if not np.isfinite(s).all() or np.any(s <= 0):
        raise ValueError("sigma: must be finite and > 0.")
    return s


def _counts(ext: Extrema, sig: NDArray, edges: NDArray, n: int, c: int) -> NDArray[np.int64]:
    """Histogram of ν = height / σ of each (patch, bin), shape (N, C, n_nu)."""
    nu = ext.height / sig[ext.index[:, 0], ext.index[:, 1]]
    k = edges.size - 1
    # np.histogram convention: [e_i, e_{i+1}), the last bin closed; outside values dropped.
    b = np.searchsorted(edges, nu, side="right") - 1
    b[nu == edges[-1]] = k - 1
    ok = (b >= 0) & (b < k)
    flat = (ext.index[ok, 0] * c + ext.index[ok, 1]) * k + b[ok]
    return np.bincount(flat, minlength=n * c * k).reshape(n, c, k)


def peak_counts(
    kappa: ArrayLike, nu_bins: ArrayLike = DEFAULT_NU_BINS, sigma: ArrayLike | None = None
) -> NDArray[np.int64]:
    """Histogram of peak heights ν = κ/σ of each patch and bin.

    Parameters
    ----------
    kappa : array_like
        Patches, shape (N, C, H, W).
    nu_bins : array_like
        Bin edges in ν (``numpy.histogram`` convention: half-open bins, the last closed; peaks
        outside the edges are not counted).
    sigma : float or array_like, optional
        The σ of ν = κ/σ.  None: the standard deviation of each patch and bin, so each
        histogram describes the shape of its own field (its amplitude is lost).  Given (a
        scalar, one value per bin (C,), or (N, C)), e.g. the shape-noise level per bin: the
        same thresholds for every patch, so counts stay comparable across patches and keep the
        amplitude information.  κ is not mean-subtracted.

    Returns
    -------
    numpy.ndarray
        (N, C, len(nu_bins) - 1) int64 counts.

    Raises
    ------
    ValueError
        On bad ``kappa``, ``nu_bins`` or ``sigma``, or a constant patch with ``sigma=None``.
    """
    x = _as_patches(kappa)
    edges = _check_nu_bins(nu_bins)
    return _counts(_extrema(x, 1.0), _sigma(x, sigma), edges, *x.shape[:2])


def minima_counts(
    kappa: ArrayLike, nu_bins: ArrayLike = DEFAULT_NU_BINS, sigma: ArrayLike | None = None
) -> NDArray[np.int64]:
    """Histogram of minimum depths ν = κ/σ of each patch and bin; see :func:`peak_counts`.

    ν keeps its sign (minima are mostly negative), so the same ``nu_bins`` serve both.
    """
    x = _as_patches(kappa)
    edges = _check_nu_bins(nu_bins)
    return _counts(_extrema(x, -1.0), _sigma(x, sigma), edges, *x.shape[:2])


# ----------------------------------------------------------------------------------- moments


def moments(kappa: ArrayLike) -> NDArray[np.float64]:
    """One-point moments of each patch and bin over all its pixels.

    Parameters
    ----------
    kappa : array_like
        Patches, shape (N, C, H, W).

    Returns
    -------
    numpy.ndarray
        (N, C, 4) float64: mean, variance (ddof=0), skewness and excess kurtosis, the biased
        estimators of ``scipy.stats.skew`` and ``scipy.stats.kurtosis`` (their defaults).  A
        constant patch has skewness and kurtosis 0 rather than NaN.

    Raises
    ------
    ValueError
        If ``kappa`` is not a finite 4-D array.
    """
    return _one_point_moments(_as_patches(kappa, min_side=1))


def _one_point_moments(x: NDArray) -> NDArray[np.float64]:
    """:func:`moments` of validated patches."""
    x = x.reshape(*x.shape[:2], -1).astype(np.float64, copy=False)
    mean = x.mean(-1)
    d = x - mean[..., None]
    d2 = d * d  # products, not d**3 / d**4: float powers are ~30x slower
    m2 = d2.mean(-1)
    m3 = np.mean(d2 * d, -1)
    m4 = np.mean(d2 * d2, -1)
    flat = m2 <= 0
    safe = np.where(flat, 1.0, m2)
    skew = np.where(flat, 0.0, m3 / safe**1.5)
    kurt = np.where(flat, 0.0, m4 / safe**2 - 3.0)
    return np.stack([mean, m2, skew, kurt], axis=-1)


# --------------------------------------------------------------------------------- features


def _ell_labels(values: NDArray[np.float64]) -> list[str]:
    """ℓ rounded to the fewest decimals (integers if possible) that keep the labels distinct."""
    for decimals in range(7):
        out = [f"{v:.{decimals}f}" for v in values]
        if len(set(out)) == len(out):
            return out
    return [repr(float(v)) for v in values]


def summary_statistics(
    kappa: ArrayLike,
    pixel_arcmin: float,
    *,
    ps_bins: int = DEFAULT_PS_BINS,
    nu_bins: ArrayLike = DEFAULT_NU_BINS,
    moments: bool = True,
    sigma: ArrayLike | None = None,
    ell_min: float | None = None,
    ell_max: float | None = None,
) -> tuple[NDArray[np.float32], list[str]]:
    """Feature vector of the classical baseline: log power spectrum, peaks, minima, moments.

    Blocks, in order, each tomographic bin ``b`` (1-based) inside a block:

    * ``ps_b{b}_ell{ℓ}``: log10 C_ℓ (auto-spectra, :func:`power_spectrum`), ℓ the bin's mean
      multipole;
    * ``peaks_b{b}_nu{ν}`` and ``minima_b{b}_nu{ν}``: counts per ν bin, ν the bin centre
      (:func:`peak_counts`, :func:`minima_counts`);
    * ``mean_b{b}``, ``var_b{b}``, ``skew_b{b}``, ``kurt_b{b}`` when ``moments`` is True.

    Parameters
    ----------
    kappa : array_like
        Patches, shape (N, C, H, W).
    pixel_arcmin : float
        Pixel side in arcminutes.
    ps_bins : int
        Number of ℓ bins.
    nu_bins : array_like
        ν bin edges shared by peaks and minima.
    moments : bool
        Append the four one-point moments.
    sigma : float or array_like, optional
        σ of ν = κ/σ, see :func:`peak_counts`.
    ell_min, ell_max : float, optional
        Outer ℓ edges, see :func:`power_spectrum`.

    Returns
    -------
    features : numpy.ndarray
        (N, F) float32.
    names : list of str
        F unique feature names.

    Raises
    ------
    ValueError
        On bad inputs, or a patch with zero power in some ℓ bin (log undefined).
    """
    x = _as_patches(kappa)
    n, c = x.shape[:2]
    edges = _check_nu_bins(nu_bins)
    ell, cl = power_spectrum(x, pixel_arcmin, ps_bins, ell_min, ell_max)
    if np.any(cl <= 0):
        raise ValueError("kappa: a patch has zero power in an ℓ bin, so log C_ℓ is undefined.")
    sig = _sigma(x, sigma)
    blocks = [
        np.log10(cl),
        _counts(_extrema(x, 1.0), sig, edges, n, c),
        _counts(_extrema(x, -1.0), sig, edges, n, c),
    ]
    ell_lab = _ell_labels(ell)
    nu_lab = [f"{v + 0.0:g}" for v in (edges[:-1] + edges[1:]) / 2]  # + 0.0 turns -0 into 0
    names = [f"ps_b{b + 1}_ell{s}" for b in range(c) for s in ell_lab]
    for kind in ("peaks", "minima"):
        names += [f"{kind}_b{b + 1}_nu{s}" for b in range(c) for s in nu_lab]
    if moments:
        blocks.append(_one_point_moments(x))  # the ``moments`` flag shadows the function
        names += [f"{m}_b{b + 1}" for b in range(c) for m in MOMENT_NAMES]
    features = np.concatenate([blk.reshape(n, -1) for blk in blocks], axis=1)
    return features.astype(np.float32), names
