"""Percentile bootstrap over maps: contributions of each group type and paired differences.

The selector weights of each group type are summed per map and parameter
(:func:`~sop_cosmo.cosmo.maths.group_types.type_weights`) and averaged over maps, with
percentile-bootstrap CIs over maps; the Ωm − σ8 differences use a *paired* bootstrap (the same
resampled maps for both parameters) (:func:`contributions`). Pure maths: no file I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sop_cosmo.cosmo.config import PARAM_NAMES, AnalyzeConfig
from sop_cosmo.cosmo.maths.group_types import TYPE_NAMES, type_weights

__all__ = [
    "LEVEL",
    "bootstrap_means",
    "contributions",
    "difference_pair",
    "paired_differences",
    "percentile_ci",
]

#: Confidence level of every interval.
LEVEL = 0.95
# The pair whose difference the contributions report (docs/contracts.md, "summary.json").
_CONTRACT_PAIR: tuple[str, str] = PARAM_NAMES


def bootstrap_means(values: ArrayLike, n_boot: int, seed: int) -> NDArray[np.float64]:
    """Means of ``n_boot`` bootstrap resamples of the rows (maps) of ``values``.

    Every column is averaged over the *same* resampled rows, which makes differences of
    columns paired.

    Parameters
    ----------
    values : array_like
        (N, ...) one row per map.
    n_boot : int
        Resamples (≥ 1).
    seed : int
        Seed of the resampling (numpy ``default_rng``).

    Returns
    -------
    numpy.ndarray
        (n_boot, ...) resampled means.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim < 1 or v.shape[0] < 1:
        raise ValueError(f"values: expected at least one row, got shape {v.shape}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot: expected ≥ 1, got {n_boot}")
    n = v.shape[0]
    rng = np.random.default_rng(seed)
    flat = v.reshape(n, -1)
    out = np.empty((int(n_boot), flat.shape[1]))
    # Multiplicity counts instead of index arrays: one matmul per chunk, same distribution.
    for s in range(0, int(n_boot), 256):
        b = min(256, int(n_boot) - s)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=b).astype(np.float64)
        out[s : s + b] = counts @ flat / n
    return out.reshape(int(n_boot), *v.shape[1:])


def percentile_ci(boot: ArrayLike, level: float = LEVEL) -> NDArray[np.float64]:
    """Percentile interval of bootstrap replicates: (n_boot, ...) → (..., 2) [lo, hi]."""
    b = np.asarray(boot, dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(b, [alpha, 1.0 - alpha], axis=0)
    return np.stack([lo, hi], axis=-1)


def paired_differences(
    a: ArrayLike, b: ArrayLike, *, n_boot: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean over maps of ``a − b`` and its paired percentile CI (resampling keeps rows paired).

    ``a`` and ``b`` are (N, ...) with one row per map, the same maps in the same order.
    Returns the means (...) and the intervals (..., 2).
    """
    diff = np.asarray(a) - np.asarray(b)
    ci = percentile_ci(bootstrap_means(diff, n_boot, seed))
    flat = diff.reshape(diff.shape[0], -1)
    means = np.array([flat[:, j].mean() for j in range(flat.shape[1])])  # column by column
    return means.reshape(diff.shape[1:]), ci


def difference_pair(names: Sequence[str]) -> tuple[int, int]:
    """Indices (a, b) of the parameters whose difference a − b is reported.

    Ωm − σ8 when both exist, else first − second when there are exactly two parameters.

    Raises
    ------
    ValueError
        When neither holds, naming the parameters.
    """
    if all(n in names for n in _CONTRACT_PAIR):
        return names.index(_CONTRACT_PAIR[0]), names.index(_CONTRACT_PAIR[1])
    if len(names) == 2:
        return 0, 1
    raise ValueError(
        f"param_names: differences need parameters 'Om' and 's8' (or exactly two parameters); "
        f"got {list(names)}"
    )


def _ci_list(ci: NDArray) -> list[float]:
    return [float(ci[0]), float(ci[1])]


def contributions(
    weights: ArrayLike,
    types: ArrayLike,
    param_names: Sequence[str],
    *,
    n_boot: int = AnalyzeConfig.n_boot,
    seed: int = AnalyzeConfig.seed,
) -> dict[str, Any]:
    """Contributions of each group type per parameter, base rates and paired differences.

    Parameters
    ----------
    weights : array_like
        (N, G, P) selector weights (sum 1 over G).
    types : array_like
        (N, G) type codes.
    param_names : sequence of str
        P names. Differences are Om − s8 when both exist, else first − second when P = 2.
    n_boot : int
        Bootstrap resamples over maps.
    seed : int
        Seed of the bootstrap. One set of resampled maps serves every quantity, so all CIs are
        paired with each other.

    Returns
    -------
    dict
        ``contributions`` ({p: {type: mean, "ci95": {type: [lo, hi]}}}), ``differences``
        ({type: {"value", "ci95"}}), ``difference_params`` ([a, b]), ``base_rates`` ({type:
        mean per-map fraction of groups}, the weight a uniform selector would give),
        ``preference`` ({p: {type: {"value", "ci95"}}}: contribution − base rate, paired).
    """
    names = [str(n) for n in param_names]
    per_map = type_weights(weights, types)  # (N, P, 3)
    n, p, k = per_map.shape
    if len(names) != p:
        raise ValueError(f"param_names: {len(names)} names for {p} parameters")
    t = np.asarray(types)
    frac = (t[..., None] == np.arange(k)).mean(1)  # (N, 3) per-map share of each type
    try:
        a, b = difference_pair(names)
    except ValueError:
        a = b = None
    diff = per_map[:, a] - per_map[:, b] if a is not None else np.zeros((n, k))
    pref = per_map - frac[:, None, :]
    # One bootstrap over maps for every quantity, so all the CIs are paired with each other.
    parts = [per_map.reshape(n, -1), diff, pref.reshape(n, -1), frac]
    bounds = np.cumsum([0] + [q.shape[1] for q in parts])
    stacked = np.concatenate(parts, axis=1)
    means = stacked.mean(0)
    ci = percentile_ci(bootstrap_means(stacked, n_boot, seed))
    m_c, m_d, m_p, m_f = (means[bounds[i] : bounds[i + 1]] for i in range(4))
    ci_c, ci_d, ci_p = (ci[bounds[i] : bounds[i + 1]] for i in range(3))
    result: dict[str, Any] = {"contributions": {}, "preference": {}}
    for j, name in enumerate(names):
        entry: dict[str, Any] = {tn: float(m_c[j * k + i]) for i, tn in enumerate(TYPE_NAMES)}
        entry["ci95"] = {tn: _ci_list(ci_c[j * k + i]) for i, tn in enumerate(TYPE_NAMES)}
        result["contributions"][name] = entry
        result["preference"][name] = {
            tn: {"value": float(m_p[j * k + i]), "ci95": _ci_list(ci_p[j * k + i])}
            for i, tn in enumerate(TYPE_NAMES)
        }
    if a is not None:
        result["differences"] = {
            tn: {"value": float(m_d[i]), "ci95": _ci_list(ci_d[i])}
            for i, tn in enumerate(TYPE_NAMES)
        }
        result["difference_params"] = [names[a], names[b]]
    result["base_rates"] = {tn: float(m_f[i]) for i, tn in enumerate(TYPE_NAMES)}
    return result
