"""Exact insertion/deletion errors of grouped attributions and per-feature LP optima.

For a polynomial ``p`` on ``{0, 1}^d`` explained at ``x = 1`` and a grouped attribution
(groups ``G_k`` with scores ``alpha_k``), the residual on a feature subset ``S`` is

* insertion: ``r_S = p(1_S) - sum_{k: G_k ⊆ S} alpha_k``
  (a group counts once it is fully inserted);
* deletion: ``r_S = p(1) - p(1_{[d] \\ S}) - sum_{k: G_k ∩ S ≠ ∅} alpha_k``
  (a group is destroyed once any of its features is deleted).

The worst-case error is ``max_S |r_S|`` and the total error ``sum_S |r_S|`` over all
``2**d`` subsets.  Per-feature attributions are the singleton-group case, for which the
best achievable error is a linear programme solved here with HiGHS.  See
``docs/theory.md`` for the formulations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import scipy.sparse as sp
from numpy.typing import ArrayLike, NDArray
from scipy.optimize import linprog

from sop_cosmo.theory.polynomials import (
    MAX_SUBSET_D,
    POLYNOMIALS,
    Polynomial,
    all_subsets,
    polynomial_by_name,
)

__all__ = [
    "KINDS",
    "OBJECTIVES",
    "ErrorKind",
    "GroupedError",
    "Objective",
    "PerFeatureOptimum",
    "error_table",
    "grouped_error",
    "grouped_residuals",
    "oracle_groups",
    "per_feature_optimum",
    "subset_targets",
]

ErrorKind = Literal["insertion", "deletion"]
Objective = Literal["worst", "total"]

#: Valid values of ``kind``.
KINDS: tuple[str, ...] = ("insertion", "deletion")
#: Valid values of ``objective``.
OBJECTIVES: tuple[str, ...] = ("worst", "total")

# Bound on the (subsets x groups) block held in memory at once by grouped_residuals.
_CHUNK_ELEMENTS = 1 << 22


class GroupedError(NamedTuple):
    """Worst-case and total error of an attribution over all ``2**d`` subsets.

    Attributes
    ----------
    worst : float
        ``max_S |r_S|``.
    total : float
        ``sum_S |r_S|``.
    """

    worst: float
    total: float


@dataclass(frozen=True)
class PerFeatureOptimum:
    """Optimal per-feature attribution for one error kind and objective.

    Attributes
    ----------
    value : float
        Optimal error (worst-case or total, depending on ``objective``).
    alpha : numpy.ndarray of float64, shape (d,)
        One optimal per-feature attribution (not unique in general).
    kind : {"insertion", "deletion"}
        Error kind.
    objective : {"worst", "total"}
        Which error was minimised.
    """

    value: float
    alpha: NDArray[np.float64]
    kind: str
    objective: str


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got kind={kind!r}")
    return kind


def _check_objective(objective: str) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got objective={objective!r}")
    return objective


def _check_poly(poly: Polynomial) -> Polynomial:
    if not isinstance(poly, Polynomial):
        raise ValueError(f"poly must be a Polynomial, got {type(poly).__name__}")
    if poly.d > MAX_SUBSET_D:
        raise ValueError(f"poly.d must be <= {MAX_SUBSET_D} to enumerate subsets, got {poly.d}")
    return poly


def _check_groups(
    poly: Polynomial, groups: ArrayLike, alpha: ArrayLike
) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    g = np.asarray(groups)
    if g.ndim != 2 or g.shape[1] != poly.d:
        raise ValueError(f"groups must have shape (K, {poly.d}), got shape {g.shape}")
    if not np.all((g == 0) | (g == 1)):
        raise ValueError("groups must be boolean (entries 0/1)")
    a = np.asarray(alpha, dtype=np.float64)
    if a.shape != (g.shape[0],):
        raise ValueError(f"alpha must have shape ({g.shape[0]},) to match groups, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("alpha must be finite")
    return g.astype(bool), a


def subset_targets(poly: Polynomial, kind: ErrorKind) -> NDArray[np.float64]:
    """Target value of every subset: what an exact attribution must sum to.

    Parameters
    ----------
    poly : Polynomial
        Function being explained at ``x = 1`` (``poly.d <= 20``).
    kind : {"insertion", "deletion"}
        ``"insertion"``: ``p(1_S)``; ``"deletion"``: ``p(1) - p(1_{[d] \\ S})``.

    Returns
    -------
    numpy.ndarray of float64, shape (2**d,)
        Targets in the subset order of :func:`~sop_cosmo.theory.polynomials.all_subsets`.
    """
    _check_kind(kind)
    _check_poly(poly)
    inserted = poly.evaluate(all_subsets(poly.d))
    if kind == "insertion":
        return inserted
    # Row 2**d - 1 - r is the complement of row r, so reversing gives p(1_{[d] \ S}).
    return inserted[-1] - inserted[::-1]


def grouped_residuals(
    poly: Polynomial, groups: ArrayLike, alpha: ArrayLike, kind: ErrorKind = "insertion"
) -> NDArray[np.float64]:
    """Signed residuals ``r_S`` of a grouped attribution for every subset ``S``.

    Parameters
    ----------
    poly : Polynomial
        Function being explained at ``x = 1`` (``poly.d <= 20``).
    groups : array_like of bool, shape (K, d)
        Group membership; groups may overlap or be empty.
    alpha : array_like of float, shape (K,)
        Group scores.
    kind : {"insertion", "deletion"}
        Error kind (see the module docstring).

    Returns
    -------
    numpy.ndarray of float64, shape (2**d,)
        ``r_S`` in the subset order of :func:`~sop_cosmo.theory.polynomials.all_subsets`.

    Raises
    ------
    ValueError
        On a bad ``kind`` or when ``groups``/``alpha`` do not match ``poly.d``.
    """
    _check_kind(kind)
    _check_poly(poly)
    g, a = _check_groups(poly, groups, alpha)
    target = subset_targets(poly, kind)
    n = target.shape[0]
    k = g.shape[0]
    if k == 0:
        return target.copy()
    # Encode groups and subsets as bitmasks (subset row r *is* its own bitmask).
    gbits = (g.astype(np.int64) << np.arange(poly.d, dtype=np.int64)).sum(axis=1)
    rows = np.arange(n, dtype=np.int64)
    credited = np.empty(n, dtype=np.float64)
    step = max(1, _CHUNK_ELEMENTS // k)
    for start in range(0, n, step):
        r = rows[start : start + step, None]
        overlap = r & gbits[None, :]
        if kind == "insertion":
            active = overlap == gbits[None, :]  # G_k ⊆ S
        else:
            active = overlap != 0  # G_k ∩ S ≠ ∅
        credited[start : start + step] = active @ a
    return target - credited


def grouped_error(
    poly: Polynomial, groups: ArrayLike, alpha: ArrayLike, kind: ErrorKind = "insertion"
) -> GroupedError:
    """Exact worst-case and total insertion/deletion error of a grouped attribution.

    Parameters
    ----------
    poly : Polynomial
        Function being explained at ``x = 1`` (``poly.d <= 20``).
    groups : array_like of bool, shape (K, d)
        Group membership.  Per-feature attributions are ``groups = numpy.eye(d, dtype=bool)``.
    alpha : array_like of float, shape (K,)
        Group scores (for a trained SOP: selector weight times group output).
    kind : {"insertion", "deletion"}
        Error kind.

    Returns
    -------
    GroupedError
        ``worst = max_S |r_S|`` and ``total = sum_S |r_S|`` over all ``2**d`` subsets.

    Raises
    ------
    ValueError
        On a bad ``kind`` or when ``groups``/``alpha`` do not match ``poly.d``.
    """
    res = np.abs(grouped_residuals(poly, groups, alpha, kind))
    return GroupedError(worst=float(res.max()), total=float(res.sum()))


def oracle_groups(poly: Polynomial) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
    """The exact grouped attribution: one group per term, each with score one.

    Parameters
    ----------
    poly : Polynomial

    Returns
    -------
    groups : numpy.ndarray of bool, shape (K, d)
        ``poly.term_masks()``.
    alpha : numpy.ndarray of float64, shape (K,)
        All ones.
    """
    return poly.term_masks(), np.ones(poly.n_terms, dtype=np.float64)


def per_feature_optimum(
    poly: Polynomial,
    kind: ErrorKind = "insertion",
    objective: Objective = "worst",
    method: str | None = None,
) -> PerFeatureOptimum:
    """Best per-feature attribution, by solving the primal LP with HiGHS.

    With ``A`` the ``(2**d, d)`` subset indicator matrix and ``c`` the subset targets
    (:func:`subset_targets`), the per-feature residual is ``r(alpha) = c - A alpha`` for
    both kinds.

    * ``objective="worst"``: ``min t`` s.t. ``-t <= c_S - A_S alpha <= t`` for all ``S``
      (variables ``alpha`` free, ``t >= 0``; ``2**(d+1)`` inequality rows).
    * ``objective="total"``: ``min sum_S t_S`` s.t. ``-t_S <= c_S - A_S alpha <= t_S``,
      solved in the equivalent split form ``A alpha + u - v = c``, ``min sum(u + v)``,
      ``u, v >= 0`` (``2**d`` equality rows; at the optimum ``t_S = u_S + v_S``).

    Parameters
    ----------
    poly : Polynomial
        Function being explained at ``x = 1`` (``poly.d <= 20``; ``d <= 14`` is quick).
    kind : {"insertion", "deletion"}
        Error kind.
    objective : {"worst", "total"}
        Error to minimise.
    method : str, optional
        ``scipy.optimize.linprog`` HiGHS method.  Default: ``"highs"`` (dual simplex) for
        ``"worst"`` and ``"highs-ipm"`` (interior point with crossover, so the solution is
        a vertex) for ``"total"``, where simplex is an order of magnitude slower on the
        deletion LPs (about 1 s instead of 0.1 s at ``d = 12``).

    Returns
    -------
    PerFeatureOptimum

    Raises
    ------
    ValueError
        On a bad ``kind`` or ``objective``.
    RuntimeError
        If HiGHS does not report an optimal solution (message included).
    """
    _check_kind(kind)
    _check_objective(objective)
    _check_poly(poly)
    d = poly.d
    c = subset_targets(poly, kind)
    n = c.shape[0]
    a_mat = sp.csr_array(all_subsets(d).astype(np.float64))
    if objective == "worst":
        ones = sp.csr_array(np.ones((n, 1)))
        # Rows: c - A alpha <= t  and  A alpha - c <= t.
        a_ub = sp.vstack([sp.hstack([-a_mat, -ones]), sp.hstack([a_mat, -ones])], format="csr")
        res = linprog(
            np.concatenate([np.zeros(d), [1.0]]),
            A_ub=a_ub,
            b_ub=np.concatenate([-c, c]),
            bounds=[(None, None)] * d + [(0, None)],
            method=method or "highs",
        )
    else:
        eye = sp.eye_array(n, format="csr")
        a_eq = sp.hstack([a_mat, eye, -eye], format="csr")
        res = linprog(
            np.concatenate([np.zeros(d), np.ones(2 * n)]),
            A_eq=a_eq,
            b_eq=c,
            bounds=[(None, None)] * d + [(0, None)] * (2 * n),
            method=method or "highs-ipm",
        )
    if res.status != 0 or res.x is None:
        raise RuntimeError(
            f"per-feature LP failed (kind={kind}, objective={objective}, d={d}): {res.message}"
        )
    alpha = np.asarray(res.x[:d], dtype=np.float64)
    return PerFeatureOptimum(value=float(res.fun), alpha=alpha, kind=kind, objective=objective)


def error_table(
    max_d: int, polynomials: tuple[str, ...] = ("monomial", "binomial")
) -> list[dict[str, Any]]:
    """Per-feature optima versus the oracle grouped attribution for ``d = 1..max_d``.

    Parameters
    ----------
    max_d : int
        Largest dimension, ``1 <= max_d <= 20`` (the LPs grow as ``2**d``; ``max_d <= 14``
        takes seconds).
    polynomials : tuple of str
        Family names (keys of :data:`~sop_cosmo.theory.polynomials.POLYNOMIALS`).  The
        binomial starts at ``d = 2``.

    Returns
    -------
    list of dict
        One row per ``(function, kind, d)``, ordered that way, with keys ``function``,
        ``kind``, ``d``, ``per_feature_error`` (worst-case optimum),
        ``per_feature_total_error`` (total-error optimum) and ``oracle_grouped_error``
        (worst-case error of :func:`oracle_groups`, zero up to rounding).

    Raises
    ------
    ValueError
        If ``max_d`` is out of range or a family name is unknown.
    """
    if isinstance(max_d, bool) or not isinstance(max_d, (int, np.integer)):
        raise ValueError(f"max_d must be an integer, got {max_d!r}")
    if not 1 <= max_d <= MAX_SUBSET_D:
        raise ValueError(f"max_d must be in [1, {MAX_SUBSET_D}], got max_d={max_d}")
    if isinstance(polynomials, str):
        raise ValueError("polynomials must be a sequence of names, not a single string")
    rows: list[dict[str, Any]] = []
    for name in polynomials:
        if name not in POLYNOMIALS:
            raise ValueError(
                f"polynomials: unknown name {name!r}, expected one of {list(POLYNOMIALS)}"
            )
        min_d = 2 if name == "binomial" else 1  # binomial(1) would have an empty term
        for kind in KINDS:
            for d in range(min_d, int(max_d) + 1):
                poly = polynomial_by_name(name, d)
                groups, alpha = oracle_groups(poly)
                rows.append(
                    {
                        "function": name,
                        "kind": kind,
                        "d": d,
                        "per_feature_error": per_feature_optimum(poly, kind, "worst").value,
                        "per_feature_total_error": per_feature_optimum(poly, kind, "total").value,
                        "oracle_grouped_error": grouped_error(poly, groups, alpha, kind).worst,
                    }
                )
    return rows
