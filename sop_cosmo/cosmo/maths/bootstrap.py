"""Percentile bootstrap over what varies: test cosmologies and training seeds.

The selector weights of each group type are summed per map and parameter
(:func:`~sop_cosmo.cosmo.maths.group_types.type_weights`) and averaged over maps and seeds,
with percentile-bootstrap CIs (:func:`contributions`). The maps of one cosmology share its
parameters (and, on a sphere cut into patches, its large-scale structure), so they are not
independent draws: the resampling unit is the cosmology, all its maps together, and with
several training seeds the seeds are resampled too (:func:`ensemble_bootstrap_means`). Every
quantity uses the same resamples, so the Ωm − σ8 differences are paired. Pure maths: no I/O.
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
    "ensemble_bootstrap_means",
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


def ensemble_bootstrap_means(
    values: ArrayLike,
    units: ArrayLike | None = None,
    *,
    n_boot: int,
    seed: int,
    resample_seeds: bool = True,
) -> NDArray[np.float64]:
    """Bootstrap means of (seed, map) values, resampling units (cosmologies) and seeds.

    Each replicate draws the units with replacement (all maps of a drawn unit come together)
    and, when ``resample_seeds``, the seeds with replacement, and averages the drawn
    (seed, map) cells: Σ_s Σ_c a_s b_c T[s, c] / (Σ_s a_s · Σ_c b_c m_c), with a_s, b_c the
    draw counts, T[s, c] the sum over unit c's maps of seed s and m_c its number of maps.
    Every column is averaged over the same draws, so differences of columns are paired.

    Parameters
    ----------
    values : array_like
        (S, N, ...) one row per seed and map.
    units : array_like, optional
        (N,) the unit (cosmology id) of each map; None: every map is its own unit.
    n_boot : int
        Resamples (≥ 1).
    seed : int
        Seed of the resampling (numpy ``default_rng``).
    resample_seeds : bool
        Also resample the S seeds (False, or S = 1: every replicate keeps all seeds).

    Returns
    -------
    numpy.ndarray
        (n_boot, ...) resampled means.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim < 2 or v.shape[0] < 1 or v.shape[1] < 1:
        raise ValueError(f"values: expected (S, N, ...) with S, N ≥ 1, got shape {v.shape}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot: expected ≥ 1, got {n_boot}")
    n_seeds, n = v.shape[:2]
    flat = v.reshape(n_seeds, n, -1)
    if units is None:
        inverse = np.arange(n)
    else:
        u = np.asarray(units)
        if u.shape != (n,):
            raise ValueError(f"units: expected one unit per map ({n}), got shape {u.shape}")
        inverse = np.unique(u, return_inverse=True)[1].reshape(n)
    n_units = int(inverse.max()) + 1
    onehot = np.zeros((n, n_units))
    onehot[np.arange(n), inverse] = 1.0
    sums = np.einsum("snk,nc->sck", flat, onehot)  # (S, C, K) per seed and unit
    sizes = onehot.sum(0)  # (C,)
    rng = np.random.default_rng(seed)
    out = np.empty((int(n_boot), flat.shape[2]))
    for s in range(0, int(n_boot), 256):
        b = min(256, int(n_boot) - s)
        draws = rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=b).astype(float)
        if resample_seeds and n_seeds > 1:
            seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1.0 / n_seeds), size=b)
        else:
            seeds = np.ones((b, n_seeds))
        per_unit = np.einsum("bs,sck->bck", seeds.astype(float), sums)
        num = np.einsum("bc,bck->bk", draws, per_unit)
        den = seeds.sum(1) * (draws @ sizes)
        out[s : s + b] = num / den[:, None]
    return out.reshape(int(n_boot), *v.shape[2:])


def percentile_ci(boot: ArrayLike, level: float = LEVEL) -> NDArray[np.float64]:
    """Percentile interval of bootstrap replicates: (n_boot, ...) → (..., 2) [lo, hi]."""
    b = np.asarray(boot, dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(b, [alpha, 1.0 - alpha], axis=0)
    return np.stack([lo, hi], axis=-1)


def paired_differences(
    a: ArrayLike, b: ArrayLike, *, units: ArrayLike | None = None, n_boot: int, seed: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean over maps of ``a − b`` and its paired percentile CI (resampling keeps rows paired).

    ``a`` and ``b`` are (N, ...) with one row per map, the same maps in the same order.
    ``units`` (N,) gives each map's cosmology: the resamples draw cosmologies, all maps of a
    drawn cosmology together (:func:`ensemble_bootstrap_means`); None draws maps. Returns the
    means (...) and the intervals (..., 2).
    """
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if units is None:
        boot = bootstrap_means(diff, n_boot, seed)
    else:
        boot = ensemble_bootstrap_means(diff[None], units, n_boot=n_boot, seed=seed)
    ci = percentile_ci(boot)
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


def _entries(m_c: NDArray, ci_c: NDArray | None, names: list[str], k: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for j, name in enumerate(names):
        entry: dict[str, Any] = {tn: float(m_c[j * k + i]) for i, tn in enumerate(TYPE_NAMES)}
        if ci_c is not None:
            entry["ci95"] = {tn: _ci_list(ci_c[j * k + i]) for i, tn in enumerate(TYPE_NAMES)}
        out[name] = entry
    return out


def _se(boot: NDArray) -> NDArray:
    """Bootstrap standard error per column (0 with a single resample)."""
    return boot.std(0, ddof=1) if boot.shape[0] > 1 else np.zeros(boot.shape[1:])


def _valued(m: NDArray, ci: NDArray, offset: int = 0) -> dict[str, dict[str, Any]]:
    return {
        tn: {"value": float(m[offset + i]), "ci95": _ci_list(ci[offset + i])}
        for i, tn in enumerate(TYPE_NAMES)
    }


def _per_map(weights: ArrayLike, types: ArrayLike, names: list[str]) -> tuple[NDArray, NDArray]:
    """(S, N, P, 3) summed weights per type and (S, N, 3) type shares, seeds stacked first."""
    w = np.asarray(weights, dtype=np.float64)
    t = np.asarray(types)
    if w.ndim == 3:
        w, t = w[None], t[None]
    if w.ndim != 4 or t.shape != w.shape[:3]:
        raise ValueError(
            f"weights (S, N, G, P) or (N, G, P) and types (S, N, G) or (N, G) do not match: "
            f"{np.shape(weights)}, {np.shape(types)}"
        )
    if len(names) != w.shape[3]:
        raise ValueError(f"param_names: {len(names)} names for {w.shape[3]} parameters")
    per_map = np.stack([type_weights(ws, ts) for ws, ts in zip(w, t, strict=True)])
    frac = (t[..., None] == np.arange(len(TYPE_NAMES))).mean(2)
    return per_map, frac


def contributions(
    weights: ArrayLike,
    types: ArrayLike,
    param_names: Sequence[str],
    *,
    cosmo_id: ArrayLike | None = None,
    n_boot: int = AnalyzeConfig.n_boot,
    seed: int = AnalyzeConfig.seed,
) -> dict[str, Any]:
    """Contributions of each group type per parameter, base rates and paired differences.

    Parameters
    ----------
    weights : array_like
        (N, G, P) selector weights (sum 1 over G) of one model, or (S, N, G, P) of S training
        seeds on the same maps.
    types : array_like
        (N, G) or (S, N, G) type codes.
    param_names : sequence of str
        P names. Differences are Om − s8 when both exist, else first − second when P = 2.
    cosmo_id : array_like, optional
        (N,) cosmology of each map: the bootstrap unit (all maps of a cosmology are drawn
        together). None: every map is its own unit.
    n_boot : int
        Bootstrap resamples (cosmologies, and seeds when S > 1:
        :func:`ensemble_bootstrap_means`).
    seed : int
        Seed of the bootstrap. One set of resamples serves every quantity, so all CIs are
        paired with each other.

    Returns
    -------
    dict
        ``contributions`` ({p: {type: mean, "ci95": {type: [lo, hi]}}}), ``differences``
        ({type: {"value", "ci95"}}), ``difference_params`` ([a, b]), ``base_rates`` ({type:
        mean per-map fraction of groups}, the weight a uniform selector would give),
        ``preference`` ({p: {type: {"value", "ci95"}}}: contribution − base rate, paired),
        ``se`` ({"differences": {type: SE}, "preference": {p: {type: SE}}}: the standard
        deviation of the bootstrap replicates), ``per_seed`` (one dict per seed with the same
        keys, CIs over cosmologies only),
        ``bootstrap_unit`` ("cosmology" or "map"), ``n_units`` and ``n_seeds``. Means are
        over every (seed, map).
    """
    names = [str(n) for n in param_names]
    per_map, frac = _per_map(weights, types, names)  # (S, N, P, 3), (S, N, 3)
    n_seeds, n, _, k = per_map.shape
    try:
        a, b = difference_pair(names)
    except ValueError:
        a = b = None
    diff = per_map[:, :, a] - per_map[:, :, b] if a is not None else np.zeros((n_seeds, n, k))
    pref = per_map - frac[:, :, None, :]
    # One stack, one set of resamples for every quantity: all the CIs are paired.
    parts = [per_map.reshape(n_seeds, n, -1), diff, pref.reshape(n_seeds, n, -1), frac]
    bounds = np.cumsum([0] + [q.shape[2] for q in parts])
    stacked = np.concatenate(parts, axis=2)

    def summarise(values: NDArray) -> dict[str, Any]:
        means = values.mean((0, 1))
        boot = ensemble_bootstrap_means(values, cosmo_id, n_boot=n_boot, seed=seed)
        ci, se = percentile_ci(boot), _se(boot)
        m_c, m_d, m_p, m_f = (means[bounds[i] : bounds[i + 1]] for i in range(4))
        ci_c, ci_d, ci_p = (ci[bounds[i] : bounds[i + 1]] for i in range(3))
        se_d, se_p = se[bounds[1] : bounds[2]], se[bounds[2] : bounds[3]]
        res: dict[str, Any] = {"contributions": _entries(m_c, ci_c, names, k)}
        res["preference"] = {
            name: _valued(m_p, ci_p, j * k) for j, name in enumerate(names)
        }  # fmt: skip
        if a is not None:
            res["differences"] = _valued(m_d, ci_d)
        res["base_rates"] = {tn: float(m_f[i]) for i, tn in enumerate(TYPE_NAMES)}
        # bootstrap SEs, for the smallest detectable effect of each candidate (claims)
        res["se"] = {
            "preference": {
                name: {tn: float(se_p[j * k + i]) for i, tn in enumerate(TYPE_NAMES)}
                for j, name in enumerate(names)
            }
        }
        if a is not None:
            res["se"]["differences"] = {tn: float(se_d[i]) for i, tn in enumerate(TYPE_NAMES)}
        return res

    result = summarise(stacked)
    if a is not None:
        result["difference_params"] = [names[a], names[b]]
    result["per_seed"] = [summarise(stacked[s : s + 1]) for s in range(n_seeds)]
    n_units = n if cosmo_id is None else len(np.unique(np.asarray(cosmo_id)))
    result.update(
        bootstrap_unit="map" if cosmo_id is None else "cosmology",
        n_units=int(n_units),
        n_seeds=int(n_seeds),
    )
    return result
