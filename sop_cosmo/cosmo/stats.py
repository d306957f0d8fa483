"""Classical weak-lensing summary statistics of flat convergence patches.

These are the features of the classical baseline regressor ("standard cosmology statistics"):
the flat-sky power spectrum, peak and minimum counts, and the one-point moments, computed for
a batch of κ patches of shape ``(N, C, H, W)`` (``C`` tomographic bins, physical convergence,
not standardised) with a pixel scale in arcminutes.

The extremum finder is plateau-safe: a gnomonic projection at native HEALPix resolution
repeats pixels, so a naive ``image == maximum_filter(image)`` marks every pixel of a flat
plateau (and every shoulder) as a peak.  Here each connected plateau that is strictly higher
than all pixels around it counts once.  See ``docs/stats.md`` for the definitions and the
normalisation convention.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import fft as sfft
from scipy import ndimage

__all__ = [
    "DEFAULT_NU_BINS",
    "DEFAULT_PS_BINS",
    "MOMENT_NAMES",
    "Extrema",
    "ell_bin_edges",
    "find_minima",
    "find_minima_batch",
    "find_peaks",
    "find_peaks_batch",
    "minima_counts",
    "moments",
    "peak_counts",
    "pixel_area_sr",
    "power_spectrum",
    "summary_statistics",
]

#: Default number of log-spaced ℓ bins of the power spectrum.
DEFAULT_PS_BINS: int = 10
#: Default ν = κ/σ bin edges of the peak and minimum histograms: width 0.5, centres -3 ... 5.
DEFAULT_NU_BINS: NDArray[np.float64] = np.linspace(-3.25, 5.25, 18)
#: Order of the last axis of :func:`moments`.
MOMENT_NAMES: tuple[str, ...] = ("mean", "var", "skew", "kurt")

# The 8 neighbour offsets (row, col) of a pixel.
_OFFSETS: tuple[tuple[int, int], ...] = tuple(
    (dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)
)
# 8-connectivity inside each (H, W) plane, no connection across patches or bins.
_PLANE_STRUCTURE = np.zeros((3, 3, 3, 3), dtype=bool)
_PLANE_STRUCTURE[1, 1] = True
# Patches per FFT chunk: bounds the complex workspace of power_spectrum.
_FFT_CHUNK = 256
# Relative slack on the outer ℓ edges so the fundamental and Nyquist modes, computed by a
# different float expression than the edges, are not lost to rounding.
_EDGE_SLACK = 1e-9


class Extrema(NamedTuple):
    """Peaks (or minima) found in a batch of patches, one row per extremum.

    Rows are ordered by patch, then bin, then the raster position of the plateau's first pixel.
    """

    #: (P, 2) int64: patch index ``n`` and tomographic bin ``c``.
    index: NDArray[np.int64]
    #: (P, 2) float64: (row, col) centroid of the plateau (a pixel centre for one pixel).
    position: NDArray[np.float64]
    #: (P, 2) int64: (row, col) of the plateau's first pixel in raster order (on the plateau).
    pixel: NDArray[np.int64]
    #: (P,) κ value of the plateau.
    height: NDArray[np.floating]


# --------------------------------------------------------------------------------- validation


def _as_patches(kappa: ArrayLike, name: str = "kappa", min_side: int = 3) -> NDArray:
    """``kappa`` as a finite float array of shape (N, C, H, W) with H, W >= ``min_side``."""
    arr = np.asarray(kappa)
    if arr.ndim != 4:
        raise ValueError(
            f"{name}: expected a 4-D array (N, C, H, W) of patches; got shape {arr.shape}."
        )
    if arr.shape[-2] < min_side or arr.shape[-1] < min_side:
        raise ValueError(
            f"{name}: patches must be at least {min_side}x{min_side}; got {arr.shape}."
        )
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values.")
    return arr


def _check_pixel(pixel_arcmin: float) -> float:
    """Validated pixel scale in arcmin."""
    try:
        value = float(pixel_arcmin)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"pixel_arcmin: expected a number; got {pixel_arcmin!r}.") from exc
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"pixel_arcmin: must be finite and > 0; got {pixel_arcmin!r}.")
    return value


def _check_nu_bins(nu_bins: ArrayLike) -> NDArray[np.float64]:
    """Validated histogram edges: 1-D, at least 2, finite, strictly increasing."""
    edges = np.asarray(nu_bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2:
        raise ValueError(
            f"nu_bins: expected at least 2 bin edges in a 1-D array; got shape {edges.shape}."
        )
    if not np.isfinite(edges).all() or np.any(np.diff(edges) <= 0):
        raise ValueError("nu_bins: edges must be finite and strictly increasing.")
    return edges


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


# ----------------------------------------------------------------------------------- extrema


def _extrema(x: NDArray, sign: float) -> Extrema:
    """Plateau-safe local maxima of ``sign * x`` over the 8 neighbours, x of shape (N, C, H, W).

    A pixel is a *candidate* when it is >= all 8 neighbours.  Two adjacent candidates are equal,
    so the 8-connected components of the candidates are flat plateaus.  A component is a true
    extremum only when no equal-valued pixel next to it is a non-candidate: such a pixel has a
    strictly higher neighbour, so the plateau is a shoulder of a higher region.  Border pixels
    are never candidates, so a plateau touching the 1-pixel border is dropped as well.
    """
    a = x if sign > 0 else -x
    c, h, w = a.shape[1:]
    centre = a[..., 1:-1, 1:-1]
    cand = np.ones(centre.shape, dtype=bool)
    for dy, dx in _OFFSETS:
        cand &= centre >= a[..., 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
    mask = np.zeros(a.shape, dtype=bool)
    mask[..., 1:-1, 1:-1] = cand

    flat_a = a.reshape(-1)
    flat_m = mask.reshape(-1)
    idx = np.flatnonzero(flat_m)  # candidates are interior, so idx + offset stays in the plane
    val = flat_a[idx]
    taint = np.zeros(idx.size, dtype=bool)
    for dy, dx in _OFFSETS:
        nb = idx + (dy * w + dx)
        taint |= (flat_a[nb] == val) & ~flat_m[nb]

    labels, n_lab = ndimage.label(mask, structure=_PLANE_STRUCTURE)
    lab = labels.reshape(-1)[idx]
    bad = np.zeros(n_lab + 1, dtype=bool)
    bad[lab[taint]] = True
    size = np.bincount(lab, minlength=n_lab + 1).astype(np.float64)
    row_sum = np.bincount(lab, weights=(idx // w) % h, minlength=n_lab + 1)
    col_sum = np.bincount(lab, weights=idx % w, minlength=n_lab + 1)
    _, first_at = np.unique(lab, return_index=True)  # labels 1..n_lab, each present
    keep = ~bad[1:]
    first = idx[first_at[keep]]
    good = np.flatnonzero(keep) + 1
    plane = first // (h * w)
    index = np.stack([plane // c, plane % c], axis=1).astype(np.int64)
    position = np.stack([row_sum[good] / size[good], col_sum[good] / size[good]], axis=1)
    pixel = np.stack([(first // w) % h, first % w], axis=1).astype(np.int64)
    return Extrema(index, position, pixel, x.reshape(-1)[first])


def find_peaks_batch(kappa: ArrayLike) -> Extrema:
    """Plateau-safe local maxima of every patch and bin of a (N, C, H, W) batch.

    A peak is a connected (8-connectivity) set of equal pixels, strictly higher than every
    pixel around it, counted once.  The 1-pixel border is ignored: border pixels are never
    peaks, and a plateau that touches the border is dropped, since its surroundings are not
    fully known.

    Parameters
    ----------
    kappa : array_like
        Patches, shape (N, C, H, W), finite, H and W >= 3.

    Returns
    -------
    Extrema
        ``index`` (n, c), ``position`` (plateau centroid), ``pixel`` (first plateau pixel) and
        ``height`` of each peak.

    Raises
    ------
    ValueError
        If ``kappa`` is not a finite 4-D array with sides >= 3.
    """
    return _extrema(_as_patches(kappa), 1.0)


def find_minima_batch(kappa: ArrayLike) -> Extrema:
    """Plateau-safe local minima of a (N, C, H, W) batch: the peaks of ``-kappa``.

    Same rules as :func:`find_peaks_batch`; ``height`` is the value of ``kappa`` (not negated).
    """
    return _extrema(_as_patches(kappa), -1.0)


def _as_image(image: ArrayLike) -> NDArray:
    arr = np.asarray(image)
    if arr.ndim != 2:
        raise ValueError(f"image: expected a 2-D array (H, W); got shape {arr.shape}.")
    return _as_patches(arr[None, None], name="image")


def find_peaks(image: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.floating]]:
    """Plateau-safe local maxima of one 2-D image over its 8 neighbours.

    Each connected plateau strictly higher than its surroundings counts once; the 1-pixel
    border is ignored (see :func:`find_peaks_batch`).

    Parameters
    ----------
    image : array_like
        (H, W) finite image, H and W >= 3.

    Returns
    -------
    positions : numpy.ndarray
        (P, 2) float64 (row, col) plateau centroids, in raster order of the plateaus.
    heights : numpy.ndarray
        (P,) image value at each peak.

    Raises
    ------
    ValueError
        If ``image`` is not a finite 2-D array with sides >= 3.

    Examples
    --------
    >>> img = np.zeros((5, 5)); img[2, 2] = 1.0
    >>> find_peaks(img)
    (array([[2., 2.]]), array([1.]))
    """
    ext = _extrema(_as_image(image), 1.0)
    return ext.position, ext.height


def find_minima(image: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.floating]]:
    """Plateau-safe local minima of one 2-D image: the peaks of ``-image``.

    Same rules and return values as :func:`find_peaks`; heights are values of ``image``.
    """
    ext = _extrema(_as_image(image), -1.0)
    return ext.position, ext.height


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
