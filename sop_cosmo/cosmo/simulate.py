"""A built-in, offline CosmoGridV1-like simulator of lognormal weak-lensing convergence maps.

The maps are written in exactly the CosmoGridV1 layout (DESIGN.md §3.1), so the project's reader
treats them like the real data:

- ``ROOT/CosmoGrid/CosmoGridV1_metainfo.h5`` with ``parameters/grid`` (one row per cosmology) and
  an empty ``parameters/fiducial``;
- ``ROOT/CosmoGrid/stage3_forecast/grid/cosmo_{i:06d}/perm_{j:04d}/``
  ``projected_probes_maps_nobaryons512.h5`` with ``kg``/``ia``/``dg`` × ``stage3_lensing{1..4}``.

The science, in short (``docs/simulate.md`` has the formulas):

1. cosmologies from a scrambled Sobol sequence over the CosmoGrid priors, cut by the Om–s8
   polygon;
2. four analytic tomographic n(z) with mean z 0.31, 0.48, 0.76, 0.94;
3. C_ℓ^κκ of all bin pairs from pyccl (Eisenstein–Hu + halofit);
4. a shifted lognormal field per bin, drawn jointly for the four bins. The shift λ_b follows a
   **heuristic** (λ ∝ the empty-beam convergence), not a published calibration.

A lognormal field matches the input two-point function and has a plausible skewness, but it is
not an N-body simulation: its higher-order statistics (peaks, voids) are only approximate.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import healpy as hp
import numpy as np
import pyccl
import transformcl
from scipy.integrate import solve_ivp
from scipy.stats import gamma, qmc
from tqdm.auto import tqdm

from sop_cosmo._io import atomic_path

__all__ = [
    "A_S_REF",
    "BIN_MEANS",
    "BIN_WIDTHS",
    "FIDUCIAL",
    "MAP_FILENAME",
    "OM_S8_POLYGON",
    "PARAMETER_NAMES",
    "PRIORS",
    "SHIFT_HEURISTIC",
    "SHIFT_REF",
    "SIMULATOR_NAME",
    "draw_cosmologies",
    "empty_beam_convergence",
    "gaussian_cls",
    "kappa_cls",
    "lognormal_maps",
    "lognormal_shifts",
    "om_s8_allowed",
    "redshift_bins",
    "scalar_amplitude",
    "simulate_grid",
]

log = logging.getLogger(__name__)

#: Cosmological parameters of a grid row, in the order the metainfo stores them.
PARAMETER_NAMES: tuple[str, ...] = ("Om", "s8", "H0", "Ob", "ns", "w0", "As")

#: The CosmoGridV1 fiducial cosmology (As is derived, see :func:`scalar_amplitude`).
FIDUCIAL: dict[str, float] = {
    "Om": 0.26,
    "s8": 0.84,
    "H0": 67.36,
    "Ob": 0.0493,
    "ns": 0.9649,
    "w0": -1.0,
}

#: CosmoGridV1 grid priors (flat ranges sampled by the Sobol sequence).
PRIORS: dict[str, tuple[float, float]] = {
    "Om": (0.10, 0.50),
    "s8": (0.40, 1.40),
    "H0": (64.0, 82.0),
    "Ob": (0.03, 0.06),
    "ns": (0.87, 1.07),
    "w0": (-2.0, -0.333),
}

#: Corners of the CosmoGridV1 Om–s8 polygon; grid points outside it are rejected.
OM_S8_POLYGON: tuple[tuple[float, float], ...] = (
    (0.1, 1.4),
    (0.2, 1.4),
    (0.5, 0.65),
    (0.5, 0.4),
    (0.3, 0.4),
    (0.1, 0.9),
)

#: Mean redshift and standard deviation of the four DES-Y3-like tomographic bins.
BIN_MEANS: tuple[float, ...] = (0.31, 0.48, 0.76, 0.94)
BIN_WIDTHS: tuple[float, ...] = (0.10, 0.10, 0.12, 0.16)

#: Lognormal shift λ of the highest bin at the fiducial cosmology (heuristic).
SHIFT_REF = 0.027
#: What the file attribute ``lognormal_shift`` says about the shift.
SHIFT_HEURISTIC = (
    "heuristic: lambda_b ∝ empty-beam convergence scaled with Om (not a published calibration)"
)
#: Reference amplitude used to turn σ8 into A_s (linear theory, σ8² ∝ A_s).
A_S_REF = 2.1e-9
#: Pivot scale of A_s in 1/Mpc.
K_PIVOT = 0.05

SIMULATOR_NAME = "sop-cosmo lognormal"
#: Bumped whenever the maps a given seed produces change; resuming skips only equal versions.
SIMULATOR_VERSION = 1
MAP_FILENAME = "projected_probes_maps_nobaryons512.h5"
PROBES: tuple[str, ...] = ("kg", "ia", "dg")
METAINFO_RELPATH = Path("CosmoGrid") / "CosmoGridV1_metainfo.h5"
GRID_RELPATH = Path("CosmoGrid") / "stage3_forecast" / "grid"

_C_KM_S = 299_792.458
_VARIABLE = ("H0", "Ob", "ns", "w0")  # parameters that ``vary=`` may draw from their priors
_H5_OPTS: dict[str, Any] = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------
def _positive_int(value: Any, name: str, hint: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer ({hint}); got {value!r}")
    return int(value)


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"seed must be a non-negative integer, e.g. seed=42; got {value!r}")
    return int(value)


def _nside(value: Any) -> int:
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1
    if not ok or (int(value) & (int(value) - 1)) != 0 or value > 2**13:
        raise ValueError(
            f"nside must be a power of two between 1 and 8192 (e.g. 128; the real data use 512); "
            f"got {value!r}"
        )
    return int(value)


def _vary(vary: Iterable[str]) -> tuple[str, ...]:
    if isinstance(vary, str):
        vary = (vary,)
    names = tuple(vary)
    bad = [v for v in names if v not in _VARIABLE]
    if bad:
        raise ValueError(f"vary may only name {', '.join(_VARIABLE)}; got {bad!r}")
    return tuple(v for v in _VARIABLE if v in names)  # canonical order: reproducible draws


def _params(params: Mapping[str, float]) -> dict[str, float]:
    if "Om" not in params or "s8" not in params:
        raise ValueError(f"params must hold at least 'Om' and 's8'; got keys {sorted(params)}")
    out = {k: float(params.get(k, FIDUCIAL[k])) for k in FIDUCIAL}
    if not out["Ob"] < out["Om"]:
        raise ValueError(f"params: Ob ({out['Ob']}) must be below Om ({out['Om']})")
    return out


# --------------------------------------------------------------------------------------------
# cosmologies
# --------------------------------------------------------------------------------------------
def om_s8_allowed(om: Any, s8: Any) -> np.ndarray:
    """Whether points lie inside the CosmoGridV1 Om–s8 polygon (:data:`OM_S8_POLYGON`).

    Parameters
    ----------
    om, s8 : array_like
        Matter density and σ8 values, broadcast against each other.

    Returns
    -------
    numpy.ndarray of bool
        True inside the polygon (even–odd ray casting).
    """
    x, y = np.broadcast_arrays(np.asarray(om, dtype=float), np.asarray(s8, dtype=float))
    inside = np.zeros(x.shape, dtype=bool)
    corners = OM_S8_POLYGON
    for (x1, y1), (x2, y2) in zip(corners, corners[1:] + corners[:1], strict=True):
        if y1 == y2:  # a horizontal edge is never crossed by a horizontal ray
            continue
        crosses = (y1 > y) != (y2 > y)
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
        inside ^= crosses & (x < x_cross)
    return inside


def _ccl_cosmology(p: Mapping[str, float]) -> pyccl.Cosmology:
    return pyccl.Cosmology(
        Omega_c=p["Om"] - p["Ob"],
        Omega_b=p["Ob"],
        h=p["H0"] / 100.0,
        sigma8=p["s8"],
        n_s=p["ns"],
        w0=p["w0"],
        transfer_function="eisenstein_hu",
        matter_power_spectrum="halofit",
    )


def _growth_today(om: float, w0: float) -> float:
    """Linear growth D(a=1) of flat wCDM without radiation, normalised to D = a early on."""

    def rhs(lna: float, y: np.ndarray) -> list[float]:
        a = math.exp(lna)
        m, de = om * a**-3, (1.0 - om) * a ** (-3.0 * (1.0 + w0))
        e2 = m + de
        dlnh = -1.5 * (m + (1.0 + w0) * de) / e2
        return [y[1], -(2.0 + dlnh) * y[1] + 1.5 * (m / e2) * y[0]]

    a0 = 1e-3
    sol = solve_ivp(rhs, (math.log(a0), 0.0), [a0, a0], rtol=1e-8, atol=1e-12)
    return float(sol.y[0, -1])


def scalar_amplitude(params: Mapping[str, float]) -> float:
    """Primordial amplitude A_s that gives the cosmology's σ8 in linear theory.

    pyccl's Eisenstein–Hu spectra are normalised by σ8 only, so σ8(A_ref) is found from the
    large-scale limit of pyccl's linear P(k) (where T(k) = 1):
    P(k) = (8π²/25) A_s (k/k_p)^(ns−1) k (c/H0)⁴ D(1)² / Om², with D(a) → a early on.
    Then A_s = A_ref·(s8/σ8(A_ref))², since σ8² ∝ A_s (A_ref = :data:`A_S_REF`,
    k_p = 0.05/Mpc).

    Parameters
    ----------
    params : mapping
        ``Om`` and ``s8``; ``H0, Ob, ns, w0`` default to :data:`FIDUCIAL`.

    Returns
    -------
    float
        A_s (dimensionless).
    """
    p = _params(params)
    cosmo = _ccl_cosmology(p)
    k0 = 1e-4  # 1/Mpc, far below k_eq: T(k0) = 1 to ~1e-4
    p_k0 = float(pyccl.linear_matter_power(cosmo, k0, 1.0))
    c_over_h0 = _C_KM_S / p["H0"]
    growth = _growth_today(p["Om"], p["w0"])
    per_as = (
        (8.0 * math.pi**2 / 25.0)
        * (k0 / K_PIVOT) ** (p["ns"] - 1.0)
        * k0
        * c_over_h0**4
        * growth**2
        / p["Om"] ** 2
    )
    sigma8_ref = p["s8"] * math.sqrt(A_S_REF * per_as / p_k0)
    return A_S_REF * (p["s8"] / sigma8_ref) ** 2


def draw_cosmologies(n: int, seed: int, vary: Iterable[str] = ()) -> list[dict[str, float]]:
    """Draw ``n`` grid cosmologies like CosmoGridV1: scrambled Sobol inside the Om–s8 polygon.

    Om and s8 are drawn from :data:`PRIORS`; ``H0, Ob, ns, w0`` stay at :data:`FIDUCIAL`
    unless named in ``vary``. Points outside :data:`OM_S8_POLYGON` are rejected and more are
    drawn until ``n`` are accepted. The result for ``n`` is a prefix of the result for any
    larger ``n`` with the same seed and ``vary``.

    Parameters
    ----------
    n : int
        Number of cosmologies (positive).
    seed : int
        Seed of the Sobol scrambling (non-negative).
    vary : iterable of str, optional
        Any of ``"H0", "Ob", "ns", "w0"`` to draw from their priors too.

    Returns
    -------
    list of dict
        One dict per cosmology with keys ``Om, s8, H0, Ob, ns, w0, As`` (floats).
    """
    n = _positive_int(n, "n", "the number of cosmologies, e.g. n=8")
    seed = _seed(seed)
    names = ("Om", "s8", *_vary(vary))
    lo = np.array([PRIORS[k][0] for k in names])
    hi = np.array([PRIORS[k][1] for k in names])
    m = max(1, math.ceil(math.log2(2 * n)))
    while True:
        # a fresh sampler with the same seed repeats its points, so draws are prefix-stable
        u = qmc.Sobol(d=len(names), scramble=True, seed=seed).random_base2(m)
        x = lo + u * (hi - lo)
        accepted = x[om_s8_allowed(x[:, 0], x[:, 1])]
        if len(accepted) >= n:
            break
        m += 1
    out = []
    for row in accepted[:n]:
        p = dict(FIDUCIAL)
        p.update({k: float(v) for k, v in zip(names, row, strict=True)})
        p["As"] = scalar_amplitude(p)
        out.append(p)
    return out


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
    n_z = _positive_int(n_z, "n_z", "the number of redshift samples, e.g. n_z=512")
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
    p = _params(params)
    lmax = _positive_int(lmax, "lmax", "the largest multipole, e.g. 3*nside-1")
    z, nz = _check_nz(z, nz)
    cosmo = _ccl_cosmology(p)
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
    p = _params(params)
    z, nz = _check_nz(z, nz)
    chi = pyccl.comoving_radial_distance(_ccl_cosmology(p), 1.0 / (1.0 + z))
    inv_chi = np.divide(1.0, chi, out=np.zeros_like(chi), where=chi > 0)
    # q(z_i) = N_>(z_i) − χ_i M_>(z_i) with N_> = ∫_{z_i} n dz and M_> = ∫_{z_i} n/χ dz
    dz = np.diff(z)

    def tail(f: np.ndarray) -> np.ndarray:
        seg = 0.5 * (f[:, 1:] + f[:, :-1]) * dz
        out = np.zeros_like(f)
        out[:, :-1] = np.cumsum(seg[:, ::-1], axis=1)[:, ::-1]
        return out

    q = tail(nz) - chi * tail(nz * inv_chi)
    prefac = 1.5 * p["Om"] * (p["H0"] / _C_KM_S) ** 2
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
def _gaussian_spectra(cls: Any, shifts: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
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
    # make each ℓ's bin covariance positive semi-definite; the clipped part is reported
    evals, evecs = np.linalg.eigh(np.moveaxis(cl_g, -1, 0))
    weight = 2.0 * np.arange(cls.shape[2]) + 1.0
    total = float(np.sum(weight[:, None] * np.abs(evals)))
    clipped = float(np.sum(weight[:, None] * np.clip(-evals, 0.0, None)))
    fraction = clipped / total if total > 0 else 0.0
    evals = np.clip(evals, 0.0, None)
    root = evecs * np.sqrt(evals)[:, None, :]  # (ℓ, a, c): root @ root.T = clipped C_G(ℓ)
    cl_psd = np.moveaxis(np.einsum("lac,lbc->lab", root, root), 0, -1)
    variance = np.array([transformcl.cltovar(cl_psd[b, b]) for b in range(n_bins)])
    if fraction > 0:
        log.debug("clipped %.3g of the Gaussian-field power to keep it positive", fraction)
    return cl_psd, root, variance, fraction


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
    cl_g, _, _, fraction = _gaussian_spectra(cls, shifts)
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


def _draw_maps(
    root: np.ndarray,
    variance: np.ndarray,
    shifts: np.ndarray,
    nside: int,
    rng: np.random.Generator,
) -> np.ndarray:
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
    gauss = np.atleast_2d(hp.alm2map(alms, nside, lmax=lmax, pixwin=False, pol=False))
    kappa = shifts[:, None] * np.expm1(gauss - 0.5 * variance[:, None])
    return kappa.astype(np.float32)


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
    nside = _nside(nside)
    generator = _as_rng(rng)
    _, root, variance, _ = _gaussian_spectra(cls, shifts)
    return _draw_maps(root, variance, np.asarray(shifts, dtype=float), nside, generator)


# --------------------------------------------------------------------------------------------
# the CosmoGridV1 tree
# --------------------------------------------------------------------------------------------
def _map_seed(seed: int, cosmo_index: int, perm: int) -> np.random.SeedSequence:
    # one independent stream per (cosmology, perm): the child (i, j) of the spawn tree of
    # SeedSequence(seed), i.e. SeedSequence(seed).spawn(i + 1)[i].spawn(j + 1)[j]; so a map
    # does not depend on how many others are simulated
    return np.random.SeedSequence(seed, spawn_key=(cosmo_index, perm))


def _map_attrs(
    params: Mapping[str, float], nside: int, seed: int, cosmo_index: int, perm: int
) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "nside": nside,
        "seed": seed,
        "seed_spawn_key": np.array([cosmo_index, perm], dtype=np.int64),
        "simulator": SIMULATOR_NAME,
        "simulator_version": SIMULATOR_VERSION,
        "lognormal_shift": SHIFT_HEURISTIC,
    }
    attrs.update({k: float(params[k]) for k in PARAMETER_NAMES})
    return attrs


def _already_written(path: Path, attrs: Mapping[str, Any]) -> bool:
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            for key in ("nside", "seed", "simulator_version", *PARAMETER_NAMES[:-1]):
                if key not in f.attrs or f.attrs[key] != attrs[key]:
                    return False
            if not np.array_equal(f.attrs.get("seed_spawn_key", []), attrs["seed_spawn_key"]):
                return False
            return all(f"kg/stage3_lensing{b}" in f for b in range(1, 5))
    except OSError:
        return False


def _write_map(
    path: Path, kappa: np.ndarray, attrs: Mapping[str, Any], extra: Mapping[str, Any]
) -> None:
    zeros = np.zeros(kappa.shape[1], dtype=np.float32)
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for b in range(kappa.shape[0]):
            name = f"stage3_lensing{b + 1}"
            f.create_dataset(f"kg/{name}", data=kappa[b], dtype=np.float32, **_H5_OPTS)
            f.create_dataset(f"ia/{name}", data=zeros, **_H5_OPTS)
            f.create_dataset(f"dg/{name}", data=zeros, **_H5_OPTS)
        f.attrs.update(dict(attrs))
        f.attrs.update(dict(extra))


def _metainfo_dtype() -> np.dtype:
    return np.dtype([*((k, "f8") for k in PARAMETER_NAMES), ("path_par", "S64")])


def _write_metainfo(
    path: Path, rows: Sequence[Mapping[str, Any]], attrs: Mapping[str, Any]
) -> None:
    dtype = _metainfo_dtype()
    table = np.zeros(len(rows), dtype=dtype)
    for i, row in enumerate(rows):
        for k in PARAMETER_NAMES:
            table[k][i] = row[k]
        table["path_par"][i] = row["path_par"].encode("ascii")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("parameters/grid", data=table)
        f.create_dataset("parameters/fiducial", shape=(0,), dtype=dtype)
        f.attrs.update(dict(attrs))


def _check_no_strays(grid: Path, n_cosmologies: int, n_perms: int) -> None:
    if not grid.is_dir():
        return
    wanted = {f"cosmo_{i:06d}" for i in range(1, n_cosmologies + 1)}
    perms = {f"perm_{j:04d}" for j in range(n_perms)}
    strays = [d for d in sorted(grid.glob("cosmo_*")) if d.name not in wanted]
    for name in sorted(wanted):
        if (grid / name).is_dir():
            strays += [d for d in sorted((grid / name).glob("perm_*")) if d.name not in perms]
    if strays:
        shown = ", ".join(str(s) for s in strays[:3])
        raise ValueError(
            f"out_root already holds {len(strays)} map folder(s) outside this grid "
            f"(e.g. {shown}); pass an empty out_root or remove them"
        )


def simulate_grid(
    out_root: str | os.PathLike,
    n_cosmologies: int,
    n_perms: int,
    nside: int,
    seed: int,
    *,
    progress: bool = True,
    vary: Iterable[str] = (),
    resume: bool = True,
) -> Path:
    """Simulate a CosmoGridV1-like grid of lognormal convergence maps and write it to disk.

    Writes ``out_root/CosmoGrid/stage3_forecast/grid/cosmo_{i:06d}/perm_{j:04d}/``
    ``projected_probes_maps_nobaryons512.h5`` for i = 1…n_cosmologies, j = 0…n_perms−1, then
    ``out_root/CosmoGrid/CosmoGridV1_metainfo.h5`` (last, so its presence means the grid is
    complete). Every file is written atomically.

    Parameters
    ----------
    out_root : str or path-like
        Root folder (created if missing). It must not hold other cosmo/perm folders.
    n_cosmologies : int
        Number of cosmologies (positive), drawn by :func:`draw_cosmologies`.
    n_perms : int
        Number of independent maps per cosmology (positive).
    nside : int
        HEALPix resolution, a power of two; spectra go up to ℓ = 3·nside − 1.
    seed : int
        Master seed: seeds the Sobol draw and, through ``SeedSequence(seed, spawn_key=(i, j))``,
        map j of cosmology i.
    progress : bool, optional
        Show a tqdm progress bar over the maps.
    vary : iterable of str, optional
        Parameters among ``H0, Ob, ns, w0`` to draw from their priors too.
    resume : bool, optional
        Skip maps already on disk with the same seed, nside, cosmology and simulator version
        (they would be rewritten byte-identical).

    Returns
    -------
    pathlib.Path
        Path of the metainfo file.
    """
    n_cosmologies = _positive_int(n_cosmologies, "n_cosmologies", "e.g. n_cosmologies=8")
    n_perms = _positive_int(n_perms, "n_perms", "maps per cosmology, e.g. n_perms=2")
    nside = _nside(nside)
    seed = _seed(seed)
    names = _vary(vary)
    root = Path(out_root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"out_root must be a folder; {root} is a file")
    grid = root / GRID_RELPATH
    _check_no_strays(grid, n_cosmologies, n_perms)

    cosmologies = draw_cosmologies(n_cosmologies, seed, names)
    z, nz = redshift_bins()
    lmax = 3 * nside - 1
    rows = []
    with tqdm(
        total=n_cosmologies * n_perms, disable=not progress, desc="simulate", unit="map"
    ) as bar:
        for i, params in enumerate(cosmologies, start=1):
            folder = f"cosmo_{i:06d}"
            rows.append({**params, "path_par": f"CosmoGrid/stage3_forecast/grid/{folder}"})
            todo = []
            for j in range(n_perms):
                path = grid / folder / f"perm_{j:04d}" / MAP_FILENAME
                attrs = _map_attrs(params, nside, seed, i, j)
                if resume and _already_written(path, attrs):
                    bar.update(1)
                else:
                    todo.append((j, path, attrs))
            if not todo:
                continue
            shifts = lognormal_shifts(params, z, nz)
            cls = kappa_cls(params, lmax, z, nz)
            _, sqrt_cl, variance, clipped = _gaussian_spectra(cls, shifts)
            extra = {
                "lognormal_lambda": shifts,
                "gaussian_cl_clipped_fraction": clipped,
                "lmax": lmax,
                "nz_bin_means": np.asarray(BIN_MEANS),
            }
            for j, path, attrs in todo:
                rng = np.random.default_rng(_map_seed(seed, i, j))
                kappa = _draw_maps(sqrt_cl, variance, shifts, nside, rng)
                _write_map(path, kappa, attrs, extra)
                bar.update(1)

    meta = root / METAINFO_RELPATH
    _write_metainfo(
        meta,
        rows,
        {
            "simulator": SIMULATOR_NAME,
            "simulator_version": SIMULATOR_VERSION,
            "seed": seed,
            "nside": nside,
            "n_perms": n_perms,
            "vary": ",".join(names),
            "lognormal_shift": SHIFT_HEURISTIC,
        },
    )
    return meta
