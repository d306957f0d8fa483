"""Physics of the built-in simulator: n(z), C_ℓ^κκ, lognormal shifts and maps.

The science, in short (``docs/simulate.md`` has the formulas):

1. four analytic tomographic n(z) with mean z 0.31, 0.48, 0.76, 0.94;
2. C_ℓ^κκ of all bin pairs from pyccl (Eisenstein–Hu + halofit);
3. a shifted lognormal field per bin, drawn jointly for the four bins. The shift λ_b follows a
   **heuristic** (λ ∝ the empty-beam convergence), not a published calibration;
4. or, for the Gaussian-maps null, Gaussian κ fields with the same spectra C_ℓ^κκ.

A lognormal field matches the input two-point function and has a plausible skewness, but it is
not an N-body simulation: its higher-order statistics (peaks, voids) are only approximate.
Pure: no file I/O (the stage :mod:`sop_cosmo.cosmo.stages.simulate` writes the maps).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import healpy as hp
import numpy as np
import pyccl
import transformcl
from scipy.stats import gamma

from .cosmology import C_KM_S, FIDUCIAL, ccl_cosmology, check_nside, check_params, positive_int

__all__ = [
    "BIN_MEANS",
    "BIN_WIDTHS",
    "SHIFT_HEURISTIC",
    "SHIFT_REF",
    "draw_gaussian_maps",
    "draw_maps",
    "empty_beam_convergence",
    "gaussian_cls",
    "gaussian_spectra",
    "kappa_cls",
    "kappa_spectra",
    "lognormal_maps",
    "lognormal_shifts",
    "redshift_bins",
]

log = logging.getLogger(__name__)

#: Mean redshift and standard deviation of the four DES-Y3-like tomographic bins.
BIN_MEANS: tuple[float, ...] = (0.31, 0.48, 0.76, 0.94)
BIN_WIDTHS: tuple[float, ...] = (0.10, 0.10, 0.12, 0.16)

#: Lognormal shift λ of the highest bin at the fiducial cosmology (heuristic).
SHIFT_REF = 0.027
#: What the file attribute ``lognormal_shift`` says about the shift.
SHIFT_HEURISTIC = (
    "heuristic: lambda_b ∝ empty-beam convergence scaled with Om (not a published calibration)"
)


# --------------------------------------------------------------------------------------------
# redshift distributions and spectra
# --------------------------------------------------------------------------------------------
def redshift_bins(n_z: int = 512, z_max: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Four analytic DES-Y3-like tomographic redshift distributions.

    Bin b is a gamma distribution with mean :data:`BIN_MEANS` [b] and standard deviation
    :data:`BIN_WIDTHS` [b]: n_b(z) ∝ z^(k−1) exp(−z/θ) with k = (μ/σ)², θ = σ²/μ. It vanishes at
    z = 0 and has a high-z tail, like photometric bins.

    Parameters
    ----------
    n_z : int, optional
        Number of redshift samples (at least 16).
    z_max : float, optional
        Largest redshift of the grid, which starts at 0.

    Returns
    -------
    z : numpy.ndarray, shape (n_z,)
        Redshift grid.
    nz : numpy.ndarray, shape (4, n_z)
        n(z) of each bin, normalised to unit integral over ``z``.
    """
    n_z = positive_int(n_z, "n_z", "the number of redshift samples, e.g. n_z=512")
    if n_z < 16:
        raise ValueError(f"n_z must be at least 16 (e.g. n_z=512); got {n_z}")
    if not z_max > 1.5:
        raise ValueError(f"z_max must exceed 1.5 to hold the bins' tails (e.g. 3.0); got {z_max}")
    z = np.linspace(0.0, float(z_max), n_z)
    nz = np.array(
        [
            gamma.pdf(z, (mu / sd) ** 2, scale=sd**2 / mu)
            for mu, sd in zip(BIN_MEANS, BIN_WIDTHS, strict=True)
        ]
    )
    nz /= np.trapezoid(nz, z, axis=1)[:, None]
    return z, nz


def _check_nz(z: Any, nz: Any) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(z, dtype=float)
    nz = np.atleast_2d(np.asarray(nz, dtype=float))
    if z.ndim != 1 or nz.shape[1:] != z.shape or np.any(np.diff(z) <= 0):
        raise ValueError(
            f"z must be an increasing 1-d grid and nz of shape (n_bins, len(z)); "
            f"got z {z.shape}, nz {nz.shape} (use redshift_bins())"
        )
    return z, nz


def kappa_cls(params: Mapping[str, float], lmax: int, z: Any, nz: Any) -> np.ndarray:
    """Convergence power spectra C_ℓ^κκ of all pairs of tomographic bins (pyccl).

    Parameters
    ----------
    params : mapping
        ``Om`` and ``s8``; ``H0, Ob, ns, w0`` default to :data:`FIDUCIAL`.
    lmax : int
        Largest multipole (use 3·nside − 1 for a HEALPix map).
    z, nz : array_like
        Redshift grid and n(z) of shape (n_bins, len(z)), e.g. from :func:`redshift_bins`.

    Returns
    -------
    numpy.ndarray, shape (n_bins, n_bins, lmax + 1)
        Symmetric in the bin indices; ℓ = 0, 1 are set to 0.
    """
    p = check_params(params)
    lmax = positive_int(lmax, "lmax", "the largest multipole, e.g. 3*nside-1")
    z, nz = _check_nz(z, nz)
    cosmo = ccl_cosmology(p)
    tracers = [pyccl.WeakLensingTracer(cosmo, dndz=(z, n)) for n in nz]
    ell = np.arange(lmax + 1)
    n_bins = len(tracers)
    cls = np.zeros((n_bins, n_bins, lmax + 1))
    for a in range(n_bins):
        for b in range(a, n_bins):
            cl = pyccl.angular_cl(cosmo, tracers[a], tracers[b], ell)
            cls[a, b] = cls[b, a] = cl
    cls[..., :2] = 0.0
    return cls


def empty_beam_convergence(params: Mapping[str, float], z: Any, nz: Any) -> np.ndarray:
    """Magnitude of the empty-beam convergence of each bin (δ = −1 along the whole beam).

    κ_E,b = (3/2) Om (H0/c)² ∫ dχ χ (1+z) q_b(χ), with the lensing efficiency
    q_b(χ) = ∫_{χ'>χ} dz' n_b(z') (1 − χ/χ'). It is the lowest convergence a line of sight can
    have; it grows with Om and with the source redshift.

    Parameters
    ----------
    params : mapping
        ``Om``, ``s8``; the rest defaults to :data:`FIDUCIAL`.
    z, nz : array_like
        Redshift grid and n(z) of shape (n_bins, len(z)).

    Returns
    -------
    numpy.ndarray, shape (n_bins,)
        |κ_E| per bin (positive).
    """
    p = check_params(params)
    z, nz = _check_nz(z, nz)
    chi = pyccl.comoving_radial_distance(ccl_cosmology(p), 1.0 / (1.0 + z))
    inv_chi = np.divide(1.0, chi, out=np.zeros_like(chi), where=chi > 0)
    # q(z_i) = N_>(z_i) − χ_i M_>(z_i) with N_> = ∫_{z_i} n dz and M_> = ∫_{z_i} n/χ dz
    dz = np.diff(z)

    def tail(f: np.ndarray) -> np.ndarray:
        seg = 0.5 * (f[:, 1:] + f[:, :-1]) * dz
        out = np.zeros_like(f)
        out[:, :-1] = np.cumsum(seg[:, ::-1], axis=1)[:, ::-1]
        return out

    q = tail(nz) - chi * tail(nz * inv_chi)
    prefac = 1.5 * p["Om"] * (p["H0"] / C_KM_S) ** 2
    return prefac * np.trapezoid(chi * (1.0 + z) * q, chi, axis=1)


def lognormal_shifts(params: Mapping[str, float], z: Any, nz: Any) -> np.ndarray:
    """Lognormal shift λ_b of each bin: a **heuristic**, not a published calibration.

    λ_b(θ) = :data:`SHIFT_REF` · κ_E,b(θ) / κ_E,top(θ_fid), where κ_E is the empty-beam
    convergence (:func:`empty_beam_convergence`), ``top`` the last (highest) bin and θ_fid the
    fiducial cosmology. So λ = 0.027 for the highest bin at the fiducial cosmology, and λ grows
    with Om (roughly ∝ Om) and with the bin's redshift. Independent of s8.

    Parameters
    ----------
    params : mapping
        ``Om``, ``s8``; the rest defaults to :data:`FIDUCIAL`.
    z, nz : array_like
        Redshift grid and n(z) of shape (n_bins, len(z)).

    Returns
    -------
    numpy.ndarray, shape (n_bins,)
        λ_b > 0 (the lowest κ the bin's map can reach is −λ_b).
    """
    kappa_e = empty_beam_convergence(params, z, nz)
    kappa_ref = empty_beam_convergence(FIDUCIAL, z, nz)[-1]
    return SHIFT_REF * kappa_e / kappa_ref


# --------------------------------------------------------------------------------------------
# lognormal fields
# --------------------------------------------------------------------------------------------
def gaussian_spectra(cls: Any, shifts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Gaussian-field spectra, their per-ℓ matrix square root, variances, clipped fraction."""
    cls = np.asarray(cls, dtype=float)
    shifts = np.asarray(shifts, dtype=float).reshape(-1)
    if cls.ndim != 3 or cls.shape[0] != cls.shape[1] or cls.shape[2] < 3:
        raise ValueError(
            f"cls must have shape (n_bins, n_bins, lmax+1) with lmax >= 2 (see kappa_cls); "
            f"got {cls.shape}"
        )
    n_bins = cls.shape[0]
    if shifts.shape != (n_bins,) or not np.all(shifts > 0):
        raise ValueError(
            f"shifts must hold one positive λ per bin ({n_bins}; see lognormal_shifts); "
            f"got {shifts!r}"
        )
    cl_g = np.zeros_like(cls)
    for a in range(n_bins):
        for b in range(a, n_bins):
            arg = 1.0 + transformcl.cltocorr(cls[a, b]) / (shifts[a] * shifts[b])
            if np.min(arg) <= 0.0:
                raise ValueError(
                    f"shifts: ξ_κ/(λ_a λ_b) ≤ −1 for bins {a + 1},{b + 1}; the lognormal "
                    f"model needs larger shifts than {shifts[a]:.4g}, {shifts[b]:.4g}"
                )
            cl_g[a, b] = cl_g[b, a] = transformcl.corrtocl(np.log(arg))
    cl_g[..., :2] = 0.0  # no monopole/dipole, like the input spectra
    return _psd_root(cl_g)


def _psd_root(cl: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Clip each ℓ's bin covariance to positive semi-definite: the clipped spectra, their
    per-ℓ square root (ℓ, a, c), the per-bin variances and the clipped power fraction."""
    evals, evecs = np.linalg.eigh(np.moveaxis(cl, -1, 0))
    weight = 2.0 * np.arange(cl.shape[2]) + 1.0
    total = float(np.sum(weight[:, None] * np.abs(evals)))
    clipped = float(np.sum(weight[:, None] * np.clip(-evals, 0.0, None)))
    fraction = clipped / total if total > 0 else 0.0
    evals = np.clip(evals, 0.0, None)
    root = evecs * np.sqrt(evals)[:, None, :]  # (ℓ, a, c): root @ root.T = clipped C(ℓ)
    cl_psd = np.moveaxis(np.einsum("lac,lbc->lab", root, root), 0, -1)
    variance = np.array([transformcl.cltovar(cl_psd[b, b]) for b in range(cl.shape[0])])
    if fraction > 0:
        log.debug("clipped %.3g of the field's power to keep it positive", fraction)
    return cl_psd, root, variance, fraction


def kappa_spectra(cls: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """:func:`gaussian_spectra` for a Gaussian κ field with the spectra ``cls`` themselves
    (no lognormal transform): the spectra, their per-ℓ square root, variances, clipped
    fraction. The Gaussian-maps null of the workflow draws from it (:func:`draw_gaussian_maps`)."""
    cls = np.asarray(cls, dtype=float)
    if cls.ndim != 3 or cls.shape[0] != cls.shape[1] or cls.shape[2] < 3:
        raise ValueError(
            f"cls must have shape (n_bins, n_bins, lmax+1) with lmax >= 2 (see kappa_cls); "
            f"got {cls.shape}"
        )
    cl = 0.5 * (cls + np.swapaxes(cls, 0, 1))
    cl[..., :2] = 0.0
    return _psd_root(cl)


def gaussian_cls(cls: Any, shifts: Any) -> tuple[np.ndarray, float]:
    """Spectra of the Gaussian fields G_b whose shifted exponentials have spectra ``cls``.

    ξ_G,ab(θ) = ln(1 + ξ_κ,ab(θ)/(λ_a λ_b)), with C_ℓ ↔ ξ(θ) by ``transformcl``. ℓ = 0, 1 are
    set to 0. Where the 4×4 matrix C_G(ℓ) is not positive semi-definite its negative
    eigenvalues are clipped to 0; the clipped fraction of the power is returned.

    Parameters
    ----------
    cls : array_like, shape (n_bins, n_bins, lmax + 1)
        Convergence spectra (:func:`kappa_cls`).
    shifts : array_like, shape (n_bins,)
        λ_b > 0 (:func:`lognormal_shifts`).

    Returns
    -------
    cl_g : numpy.ndarray, shape (n_bins, n_bins, lmax + 1)
        Gaussian-field spectra after clipping.
    clipped_fraction : float
        Σ_ℓ (2ℓ+1)·|negative eigenvalues| / Σ_ℓ (2ℓ+1)·Σ|eigenvalues| (0 when none clipped).
    """
    cl_g, _, _, fraction = gaussian_spectra(cls, shifts)
    return cl_g, fraction


def _as_rng(rng: Any) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (bool, float)):
        raise ValueError(
            f"rng must be a numpy Generator, a SeedSequence or an int seed "
            f"(e.g. np.random.default_rng(0)); got {rng!r}"
        )
    return np.random.default_rng(rng)


def draw_maps(
    root: np.ndarray,
    variance: np.ndarray,
    shifts: np.ndarray,
    nside: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Maps (n_bins, 12·nside²) float32 from the pieces of :func:`gaussian_spectra`: the
    per-ℓ square root ``root`` (ℓ, a, c), the Gaussian variances and the shifts λ_b."""
    gauss = _gaussian_fields(root, nside, rng)
    kappa = shifts[:, None] * np.expm1(gauss - 0.5 * variance[:, None])
    return kappa.astype(np.float32)


def draw_gaussian_maps(root: np.ndarray, nside: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian κ maps (n_bins, 12·nside²) float32 from the per-ℓ square root of
    :func:`kappa_spectra`. With the same ``rng`` state as :func:`draw_maps` they use the same
    unit normals, so a Gaussian and a lognormal map of one seed share their phases."""
    return _gaussian_fields(root, nside, rng).astype(np.float32)


def _gaussian_fields(root: np.ndarray, nside: int, rng: np.random.Generator) -> np.ndarray:
    """Correlated Gaussian maps (n_bins, 12·nside²) float64 with a_ℓm = root(ℓ) · unit normals."""
    n_ell, n_bins, _ = root.shape
    lmax = n_ell - 1
    _, m = hp.Alm.getlm(lmax)
    # unit complex normals: <|z|²> = 1, real for m = 0 (healpy's convention for a_ℓm)
    draws = rng.standard_normal((n_bins, 2, m.size))
    unit = (draws[:, 0] + 1j * draws[:, 1]) * np.sqrt(0.5)
    real = m == 0
    unit[:, real] = draws[:, 0, real]
    # healpy orders a_ℓm by m, then ℓ = m…lmax: correlate the bins one m-block at a time
    alms = np.empty((n_bins, m.size), dtype=np.complex128)
    start = 0
    for m_val in range(lmax + 1):
        stop = start + lmax + 1 - m_val
        alms[:, start:stop] = np.einsum("lac,cl->al", root[m_val:], unit[:, start:stop])
        start = stop
    return np.atleast_2d(hp.alm2map(alms, nside, lmax=lmax, pixwin=False, pol=False))


def lognormal_maps(cls: Any, shifts: Any, nside: int, rng: Any) -> np.ndarray:
    """Draw jointly correlated shifted-lognormal convergence maps, one per tomographic bin.

    The Gaussian fields G_b have the spectra of :func:`gaussian_cls`; their a_ℓm are drawn
    jointly with a per-ℓ matrix square root of C_G(ℓ) from ``rng`` and turned into maps with
    ``healpy.alm2map`` (no pixel window). Then κ_b = λ_b (exp(G_b − σ²_G,b/2) − 1), so κ_b has
    zero mean, spectra ``cls`` (up to ℓ = lmax) and is bounded below by −λ_b.

    Parameters
    ----------
    cls : array_like, shape (n_bins, n_bins, lmax + 1)
        Convergence spectra (:func:`kappa_cls`), usually with lmax = 3·nside − 1.
    shifts : array_like, shape (n_bins,)
        λ_b > 0 (:func:`lognormal_shifts`).
    nside : int
        HEALPix resolution (a power of two).
    rng : numpy.random.Generator, SeedSequence or int
        Source of the random numbers; the maps depend on nothing else.

    Returns
    -------
    numpy.ndarray, shape (n_bins, 12·nside²), float32
        RING-ordered convergence maps.

    Notes
    -----
    The joint draw is done here rather than with ``healpy.synalm``, because ``synalm`` reads
    NumPy's global legacy random state, so it cannot honour ``rng`` (and a seeded call would
    disturb other code); the statistics are the same. The eigendecomposition also copes with
    a C_G(ℓ) that had to be clipped to positive semi-definite.
    """
    nside = check_nside(nside)
    generator = _as_rng(rng)
    _, root, variance, _ = gaussian_spectra(cls, shifts)
    return draw_maps(root, variance, np.asarray(shifts, dtype=float), nside, generator)
