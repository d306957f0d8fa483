"""Cosmologies of the built-in simulator: priors, the Om–s8 polygon, A_s, Sobol draws.

CosmoGridV1's grid is a scrambled Sobol sequence over flat priors, cut by an Om–s8 polygon;
:func:`draw_cosmologies` draws the same way (``docs/simulate.md``). Pure: no file I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pyccl
from scipy.integrate import solve_ivp
from scipy.stats import qmc

from sop_cosmo.cosmo.config import SimulateConfig

__all__ = [
    "A_S_REF",
    "FIDUCIAL",
    "K_PIVOT",
    "OM_S8_POLYGON",
    "PARAMETER_NAMES",
    "PRIORS",
    "VARIABLE",
    "ccl_cosmology",
    "check_nside",
    "check_params",
    "check_seed",
    "check_vary",
    "draw_cosmologies",
    "om_s8_allowed",
    "positive_int",
    "scalar_amplitude",
]

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

#: Reference amplitude used to turn σ8 into A_s (linear theory, σ8² ∝ A_s).
A_S_REF = 2.1e-9
#: Pivot scale of A_s in 1/Mpc.
K_PIVOT = 0.05

#: Speed of light in km/s.
C_KM_S = 299_792.458
#: Parameters that ``vary=`` may draw from their priors, in draw order.
VARIABLE: tuple[str, ...] = ("H0", "Ob", "ns", "w0")


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------
def positive_int(value: Any, name: str, hint: str) -> int:
    """``value`` as an int ≥ 1; else a ValueError naming ``name`` with ``hint``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer ({hint}); got {value!r}")
    return int(value)


def check_seed(value: Any) -> int:
    """``value`` as a non-negative int seed."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"seed must be a non-negative integer, e.g. seed=42; got {value!r}")
    return int(value)


def check_nside(value: Any) -> int:
    """``value`` as a HEALPix nside: a power of two in [1, 8192]."""
    ok = not isinstance(value, bool) and isinstance(value, (int, np.integer)) and value >= 1
    if not ok or (int(value) & (int(value) - 1)) != 0 or value > 2**13:
        raise ValueError(
            f"nside must be a power of two between 1 and 8192 (e.g. 128; the real data use 512); "
            f"got {value!r}"
        )
    return int(value)


def check_vary(vary: Iterable[str]) -> tuple[str, ...]:
    """Names of :data:`VARIABLE` in ``vary``, in the canonical (draw) order."""
    if isinstance(vary, str):
        vary = (vary,)
    names = tuple(vary)
    bad = [v for v in names if v not in VARIABLE]
    if bad:
        raise ValueError(f"vary may only name {', '.join(VARIABLE)}; got {bad!r}")
    return tuple(v for v in VARIABLE if v in names)  # canonical order: reproducible draws


def check_params(params: Mapping[str, float]) -> dict[str, float]:
    """The six parameters of :data:`FIDUCIAL`: ``params`` (with Om, s8) over the fiducial."""
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


def ccl_cosmology(p: Mapping[str, float]) -> pyccl.Cosmology:
    """The pyccl cosmology (Eisenstein–Hu, halofit) of checked parameters."""
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
    p = check_params(params)
    cosmo = ccl_cosmology(p)
    k0 = 1e-4  # 1/Mpc, far below k_eq: T(k0) = 1 to ~1e-4
    p_k0 = float(pyccl.linear_matter_power(cosmo, k0, 1.0))
    c_over_h0 = C_KM_S / p["H0"]
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


def draw_cosmologies(
    n: int, seed: int, vary: Iterable[str] = SimulateConfig.vary
) -> list[dict[str, float]]:
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
    n = positive_int(n, "n", "the number of cosmologies, e.g. n=8")
    seed = check_seed(seed)
    names = ("Om", "s8", *check_vary(vary))
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
