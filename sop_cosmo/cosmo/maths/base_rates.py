"""Type base rates: how often a group of the generator's size, placed at random, is typed void,
cluster or other.

The share of void or cluster groups among the SOP's selected groups means little alone: on
maps where a third of the pixels are void pixels, a third of any groups may type as void. So
for every selected group the analysis draws a **random mask with the same number of attention
cells** on the same map (:func:`random_grid_masks`, uniform over the map's grid), types it by
the same rule, and compares the two (:func:`type_shares`): a generator whose groups are more
void (or cluster) than its random masks picks out that structure beyond what its group sizes
give by chance. :func:`share_intervals` puts 95% CIs on both shares and on their difference,
resampling test cosmologies and training seeds like every other interval of the analysis.

Pure maths: no file I/O; the typing itself is :mod:`sop_cosmo.cosmo.maths.group_types`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sop_cosmo.cosmo.maths.bootstrap import ensemble_bootstrap_means, percentile_ci
from sop_cosmo.cosmo.maths.group_types import TYPE_NAMES
from sop_cosmo.cosmo.maths.occlusion import random_masks

__all__ = ["random_grid_masks", "share_intervals", "type_shares"]


def random_grid_masks(masks: ArrayLike, rng: np.random.Generator) -> NDArray[np.uint8]:
    """Each group's mask redrawn at random on its map's grid, with as many cells.

    Parameters
    ----------
    masks : array_like
        (N, G, gh, gw) masks on the attention grid; non-zero means "in the group".
    rng : numpy.random.Generator
        Source of the draws.

    Returns
    -------
    numpy.ndarray
        (N, G, gh, gw) uint8 with the same number of cells per group as ``masks``, drawn
        uniformly and independently for every group (copies of one mask get different draws).
    """
    m = np.asarray(masks) != 0
    if m.ndim != 4:
        raise ValueError(f"masks: expected (N, G, gh, gw), got shape {m.shape}")
    n, g, gh, gw = m.shape
    # one single-bin "patch" per group, so that every group gets its own draw
    drawn = random_masks(m.reshape(n * g, 1, gh, gw), rng)
    return drawn.reshape(m.shape).astype(np.uint8)


def type_shares(
    types: ArrayLike, weights: ArrayLike, param_names: Sequence[str]
) -> dict[str, dict]:
    """Type shares of the selected groups: by count, and weighted by each parameter's weights.

    Parameters
    ----------
    types : array_like
        (N, G) type codes (:func:`~sop_cosmo.cosmo.maths.group_types.classify_groups`) of
        the groups, or of the random masks drawn for them.
    weights : array_like
        (N, G, P) selector weights; a group is selected when some parameter gives it w > 0.
    param_names : sequence of str
        P parameter names.

    Returns
    -------
    dict
        ``{"groups": {type: fraction of the selected groups}, "weighted": {param: {type:
        Σ w·[type] / Σ w}}}``; each block sums to 1 (the weighted one is the contribution of
        :mod:`~sop_cosmo.cosmo.maths.bootstrap` when ``types`` are the groups' own).

    Raises
    ------
    ValueError
        On mismatched shapes or when no group is selected.
    """
    t = np.asarray(types)
    w = np.asarray(weights, dtype=np.float64)
    names = [str(p) for p in param_names]
    if t.ndim != 2 or w.shape != (*t.shape, len(names)):
        raise ValueError(
            f"types (N, G) and weights (N, G, {len(names)}) do not match: {t.shape}, {w.shape}"
        )
    selected = (w > 0).any(-1)
    if not selected.any():
        raise ValueError("weights: no group is selected (w > 0); the type shares are undefined")
    onehot = t[..., None] == np.arange(len(TYPE_NAMES))  # (N, G, 3)
    counts = onehot[selected].mean(0)
    weighted = np.einsum("ngp,ngt->pt", w, onehot.astype(np.float64))
    weighted /= w.sum((0, 1))[:, None]
    return {
        "groups": {tn: float(counts[i]) for i, tn in enumerate(TYPE_NAMES)},
        "weighted": {
            name: {tn: float(weighted[q, i]) for i, tn in enumerate(TYPE_NAMES)}
            for q, name in enumerate(names)
        },
    }


def share_intervals(
    types: ArrayLike, random_types: ArrayLike, weights: ArrayLike, param_names: Sequence[str],
    *, units: ArrayLike | None, n_boot: int, seed: int,
) -> dict[str, dict]:  # fmt: skip
    """95% CIs of :func:`type_shares` for the groups, their random masks and the difference.

    A share is a ratio of sums over the selected groups; each replicate resamples the units
    (all maps of a cosmology together) and the seeds, and takes the ratio of the resampled
    sums, so the generator's share, the random share and their difference are paired.

    Parameters
    ----------
    types, random_types : array_like
        (S, N, G) type codes of the groups and of the random masks drawn for them, per seed.
    weights : array_like
        (S, N, G, P) selector weights.
    param_names : sequence of str
        P parameter names.
    units : array_like or None
        (N,) unit (cosmology id) of each map; None: every map is its own unit.
    n_boot, seed : int
        Resamples and their seed.

    Returns
    -------
    dict
        ``{"groups": {"generator" | "random" | "excess": {type: [lo, hi]}}, "weighted":
        {param: {same}}}``, where excess is generator − random.
    """
    t, r = np.asarray(types), np.asarray(random_types)
    w = np.asarray(weights, dtype=np.float64)
    names = [str(p) for p in param_names]
    if t.ndim != 3 or r.shape != t.shape or w.shape != (*t.shape, len(names)):
        raise ValueError(
            f"types, random_types (S, N, G) and weights (S, N, G, {len(names)}) do not match: "
            f"{t.shape}, {r.shape}, {w.shape}"
        )
    k = len(TYPE_NAMES)
    selected = (w > 0).any(-1)[..., None].astype(np.float64)  # (S, N, G, 1)
    own = (t[..., None] == np.arange(k)).astype(np.float64)  # (S, N, G, T)
    rand = (r[..., None] == np.arange(k)).astype(np.float64)
    s_, n_ = t.shape[:2]
    # per (seed, map) sums: counts by type, the selected count, weights by type, weight sums
    cols = [
        (own * selected).sum(2), (rand * selected).sum(2), selected.sum(2),
        np.einsum("sngp,sngt->snpt", w, own).reshape(s_, n_, -1),
        np.einsum("sngp,sngt->snpt", w, rand).reshape(s_, n_, -1), w.sum(2),
    ]  # fmt: skip
    sizes = np.cumsum([0] + [c.shape[-1] for c in cols])
    boot = ensemble_bootstrap_means(np.concatenate(cols, -1), units, n_boot=n_boot, seed=seed)
    b = [boot[:, sizes[i] : sizes[i + 1]] for i in range(len(cols))]
    with np.errstate(invalid="ignore", divide="ignore"):  # a replicate without selections
        g_own, g_rand = b[0] / b[2], b[1] / b[2]
        p_ = len(names)
        w_own = b[3].reshape(-1, p_, k) / b[5][..., None]
        w_rand = b[4].reshape(-1, p_, k) / b[5][..., None]

    def block(gen: NDArray, ran: NDArray) -> dict[str, dict[str, list[float]]]:
        out = {}
        for key, v in (("generator", gen), ("random", ran), ("excess", gen - ran)):
            ci = percentile_ci(v[np.isfinite(v).all(-1)])
            out[key] = {tn: [float(ci[i, 0]), float(ci[i, 1])] for i, tn in enumerate(TYPE_NAMES)}
        return out

    return {
        "groups": block(g_own, g_rand),
        "weighted": {name: block(w_own[:, q], w_rand[:, q]) for q, name in enumerate(names)},
    }
