"""Typing of SOP groups as void, cluster or other (docs/contracts.md, "Void and cluster
definitions").

For every analysed patch the SOP model gives G group masks over its attention grid. This module

1. turns grid masks into pixel masks (:func:`upsample_masks`);
2. measures each group on the *physical* convergence κ, in one of two units:

   * noise units (the default of the analysis, :func:`group_statistics_nu`): on every bin b
     the model sees, ν = κ / σ_noise,b with one σ per bin for all patches (preprocess records
     it); void pixels have ν ≤ −ν_v, cluster pixels ν ≥ ν_c; the statistics pool every
     (pixel, bin) of the group, and are also given per bin;
   * patch units (the anchor's rule, :func:`group_statistics`): on one bin, κ/σ with σ the
     patch's own standard deviation; void pixels κ < void_sigma·σ, cluster κ > cluster_sigma·σ;

   with the mean κ/σ, the void and cluster pixel fractions, and the peaks and minima inside it;
3. labels each group void, cluster or other (:func:`classify_groups`);
4. sums selector weights per group type (:func:`type_weights`) and scores the anchor's purity
   (:func:`purity`); :mod:`sop_cosmo.cosmo.maths.sweep` sweeps the thresholds.

Pure maths: no file I/O. The bootstrap over maps is :mod:`sop_cosmo.cosmo.maths.bootstrap`.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sop_cosmo.cosmo.config import GROUP_TYPES, Thresholds
from sop_cosmo.cosmo.maths.extrema import find_minima_batch, find_peaks_batch

__all__ = [
    "CLUSTER",
    "OTHER",
    "STAT_NAMES",
    "TYPE_NAMES",
    "VOID",
    "check_tau",
    "classify_groups",
    "cluster_fraction",
    "cluster_fraction_nu",
    "group_statistics",
    "group_statistics_nu",
    "group_type_rates",
    "purity",
    "type_weights",
    "upsample_masks",
]

#: Group type codes (int8 in the outputs) and their names, in code order.
VOID, CLUSTER, OTHER = 0, 1, 2
TYPE_NAMES: tuple[str, ...] = GROUP_TYPES
#: Keys of :func:`group_statistics`, each an (N, G) array.
STAT_NAMES: tuple[str, ...] = (
    "mean_kappa_sigma",
    "void_fraction",
    "cluster_fraction",
    "n_peaks",
    "n_minima",
    "mask_fraction",
)


# ------------------------------------------------------------------------------------ masks


def upsample_masks(
    masks: ArrayLike, shape: tuple[int, int], *, patch: int | None = None
) -> NDArray[np.bool_]:
    """Patch-grid masks → pixel masks.

    Each grid cell covers a ``patch × patch`` block of pixels, starting at the top-left corner;
    the last row/column of blocks is cut where the image ends (the SOP image backbone pads the
    image on the bottom/right to a whole number of cells).

    Parameters
    ----------
    masks : array_like
        (N, G, gh, gw) masks on the attention grid; non-zero means "in the group".
    shape : tuple of int
        Image size (H, W) in pixels.
    patch : int, optional
        Cell side in pixels (the SOP's ``attention_patch``). Default ``ceil(H / gh)``, the
        smallest cell that gives this grid. Several cell sizes can give the same grid (a 3×3
        grid on 9×9 pixels comes from 3- or 4-pixel cells, and the two place the cells
        differently), so pass the patch whenever it is known.

    Returns
    -------
    numpy.ndarray
        (N, G, H, W) bool.

    Raises
    ------
    ValueError
        When the grid cannot come from ``shape`` with that patch size.
    """
    m = np.asarray(masks)
    if m.ndim != 4:
        raise ValueError(f"masks: expected (N, G, gh, gw), got shape {m.shape}")
    h, w = (int(s) for s in shape)
    gh, gw = m.shape[-2:]
    p = math.ceil(h / gh) if patch is None else int(patch)
    if p < 1 or math.ceil(h / p) != gh or math.ceil(w / p) != gw:
        raise ValueError(
            f"masks: a {gh}×{gw} grid does not tile a {h}×{w} image with {p}-pixel cells "
            f"(expected a ceil({h}/{p})×ceil({w}/{p}) grid); pass the attention patch size"
        )
    up = np.repeat(np.repeat(m != 0, p, axis=-2), p, axis=-1)
    return np.ascontiguousarray(up[..., :h, :w])


# ------------------------------------------------------------------------------- statistics


def _check_kappa_masks(kappa: ArrayLike, masks: ArrayLike) -> tuple[NDArray, NDArray]:
    k = np.asarray(kappa, dtype=np.float64)
    m = np.asarray(masks)
    if k.ndim != 3:
        raise ValueError(f"kappa: expected (N, H, W) of one bin, got shape {k.shape}")
    if m.ndim != 4 or m.shape[0] != k.shape[0] or m.shape[2:] != k.shape[1:]:
        raise ValueError(
            f"masks: expected (N, G, H, W) pixel masks matching kappa {k.shape}, got {m.shape}; "
            "use upsample_masks for patch-grid masks"
        )
    if not np.isfinite(k).all():
        raise ValueError("kappa: contains NaN or infinite values")
    return k, m != 0


def _sigma(k: NDArray) -> NDArray:
    sigma = k.std(axis=(1, 2))
    flat = np.flatnonzero(~(sigma > 0))
    if flat.size:
        raise ValueError(f"kappa: maps {flat[:10].tolist()} are constant (σ = 0); κ/σ is undefined")
    return sigma


def _pixel_fractions(
    k: NDArray, m: NDArray, thresholds: NDArray, *, above: bool, inclusive: bool = False
) -> tuple[NDArray, NDArray]:
    """(N, G) fraction of each mask's pixels above (or below) a per-map threshold, and areas;
    ``inclusive`` counts pixels equal to the threshold too."""
    n, g = m.shape[:2]
    mf = m.reshape(n, g, -1).astype(np.float32)
    t = thresholds[:, None, None]
    if above:
        hit = (k >= t) if inclusive else (k > t)
    else:
        hit = (k <= t) if inclusive else (k < t)
    count = np.matmul(mf, hit.reshape(n, -1, 1).astype(np.float32))[..., 0]
    area = mf.sum(-1)
    frac = np.divide(count, area, out=np.zeros_like(count), where=area > 0)
    return frac.astype(np.float64), area.astype(np.float64)


def _count_inside(m: NDArray, n_idx: NDArray, pixel: NDArray) -> NDArray:
    counts = np.zeros(m.shape[:2], dtype=np.int64)
    if n_idx.size:
        np.add.at(counts, n_idx, m[n_idx, :, pixel[:, 0], pixel[:, 1]].astype(np.int64))
    return counts


def group_statistics(
    kappa: ArrayLike,
    masks: ArrayLike,
    *,
    void_sigma: float = Thresholds.void_sigma,
    cluster_sigma: float = Thresholds.cluster_sigma,
) -> dict[str, NDArray]:
    """κ statistics of every group of every map.

    Parameters
    ----------
    kappa : array_like
        (N, H, W) physical convergence of one tomographic bin (not standardised).
    masks : array_like
        (N, G, H, W) pixel masks (bool or 0/1), e.g. from :func:`upsample_masks`.
    void_sigma, cluster_sigma : float
        A pixel is a void pixel when κ < void_sigma·σ and a cluster pixel when
        κ > cluster_sigma·σ, with σ the standard deviation of κ over the whole patch (per map).

    Returns
    -------
    dict of str to numpy.ndarray
        (N, G) arrays: ``mean_kappa_sigma`` (mean κ over the group / σ), ``void_fraction``,
        ``cluster_fraction`` (fractions of the group's pixels), ``n_peaks``, ``n_minima``
        (plateau-safe local extrema of the whole patch, from
        :func:`~sop_cosmo.cosmo.maths.extrema.find_peaks_batch`, whose first plateau pixel lies
        in the group) and ``mask_fraction`` (group area / patch area). An empty group has all
        statistics 0.

    Raises
    ------
    ValueError
        On mismatched shapes, non-finite κ, or a constant map (σ = 0).
    """
    k, m = _check_kappa_masks(kappa, masks)
    return _group_stats(k, m, _sigma(k), void_sigma, cluster_sigma, inclusive=False)


def _group_stats(
    k: NDArray, m: NDArray, sigma: NDArray, void_t: float, cluster_t: float, *, inclusive: bool
) -> dict[str, NDArray]:
    """:func:`group_statistics` with a given σ per map and pixel thresholds in units of σ."""
    n, g = m.shape[:2]
    void, area = _pixel_fractions(k, m, void_t * sigma, above=False, inclusive=inclusive)
    cluster, _ = _pixel_fractions(k, m, cluster_t * sigma, above=True, inclusive=inclusive)
    mf = m.reshape(n, g, -1).astype(np.float64)
    ksum = np.matmul(mf, k.reshape(n, -1, 1))[..., 0]
    mean = np.divide(ksum, area, out=np.zeros_like(ksum), where=area > 0) / sigma[:, None]
    peaks = find_peaks_batch(k[:, None])
    minima = find_minima_batch(k[:, None])
    return {
        "mean_kappa_sigma": mean,
        "void_fraction": void,
        "cluster_fraction": cluster,
        "n_peaks": _count_inside(m, peaks.index[:, 0], peaks.pixel),
        "n_minima": _count_inside(m, minima.index[:, 0], minima.pixel),
        "mask_fraction": area / (k.shape[1] * k.shape[2]),
    }


def cluster_fraction(kappa: ArrayLike, masks: ArrayLike, cluster_sigma: float) -> NDArray:
    """(N, G) ``cluster_fraction`` of :func:`group_statistics` alone (for the sweep)."""
    k, m = _check_kappa_masks(kappa, masks)
    return _pixel_fractions(k, m, cluster_sigma * _sigma(k), above=True)[0]


def _check_bins(kappa: ArrayLike, masks: ArrayLike, sigma_noise: ArrayLike) -> tuple:
    k = np.asarray(kappa, dtype=np.float64)
    if k.ndim != 4:
        raise ValueError(f"kappa: expected (N, B, H, W) with every bin, got shape {k.shape}")
    s = np.asarray(sigma_noise, dtype=np.float64).reshape(-1)
    if s.shape != (k.shape[1],):
        raise ValueError(f"sigma_noise: expected one σ per bin ({k.shape[1]}), got {s.size}")
    if not (np.isfinite(s).all() and (s > 0).all()):
        raise ValueError(f"sigma_noise: expected finite values > 0, got {s.tolist()}")
    m = np.asarray(masks)
    return k, m, s


def group_statistics_nu(
    kappa: ArrayLike,
    masks: ArrayLike,
    sigma_noise: ArrayLike,
    *,
    nu_void: float,
    nu_cluster: float,
) -> tuple[dict[str, NDArray], dict[str, NDArray]]:
    """κ statistics of every group in noise units, on every bin.

    Parameters
    ----------
    kappa : array_like
        (N, B, H, W) physical convergence of every bin the model sees.
    masks : array_like
        (N, G, H, W) pixel masks.
    sigma_noise : array_like
        (B,) σ_noise per bin (the patch file's ``sigma_noise``): ν = κ / σ_noise.
    nu_void, nu_cluster : float
        A pixel of a bin is a void pixel when ν ≤ −``nu_void`` and a cluster pixel when
        ν ≥ ``nu_cluster``.

    Returns
    -------
    pooled : dict of str to numpy.ndarray
        (N, G) arrays with the keys of :func:`group_statistics` over every (pixel, bin) of the
        group: the mean of the per-bin ``mean_kappa_sigma`` (mean ν), ``void_fraction`` and
        ``cluster_fraction`` (every bin has the group's pixels once), the summed ``n_peaks``
        and ``n_minima``, and ``mask_fraction``.
    per_bin : dict of str to numpy.ndarray
        The same keys, (N, G, B): the statistics of each bin alone.
    """
    k, m, s = _check_bins(kappa, masks, sigma_noise)
    n = k.shape[0]
    per = []
    for b in range(k.shape[1]):
        kb, mb = _check_kappa_masks(k[:, b], m)
        per.append(_group_stats(kb, mb, np.full(n, s[b]), -nu_void, nu_cluster, inclusive=True))
    per_bin = {key: np.stack([d[key] for d in per], axis=-1) for key in STAT_NAMES}
    pooled = {key: per_bin[key].mean(-1) for key in STAT_NAMES}
    for key in ("n_peaks", "n_minima"):
        pooled[key] = per_bin[key].sum(-1)
    pooled["mask_fraction"] = per_bin["mask_fraction"][..., 0]
    return pooled, per_bin


def cluster_fraction_nu(
    kappa: ArrayLike, masks: ArrayLike, sigma_noise: ArrayLike, nu_cluster: float
) -> NDArray:
    """(N, G) pooled ``cluster_fraction`` of :func:`group_statistics_nu` alone (the sweep)."""
    k, m, s = _check_bins(kappa, masks, sigma_noise)
    fractions = []
    for b in range(k.shape[1]):
        kb, mb = _check_kappa_masks(k[:, b], m)
        t = np.full(k.shape[0], nu_cluster * s[b])
        fractions.append(_pixel_fractions(kb, mb, t, above=True, inclusive=True)[0])
    return np.mean(fractions, axis=0)


# ---------------------------------------------------------------------------- classification


def check_tau(tau_void: float, tau_cluster: float) -> None:
    """Refuse group thresholds outside (0, 1], naming the bad one."""
    for name, tau in (("tau_void", tau_void), ("tau_cluster", tau_cluster)):
        if not (0 < float(tau) <= 1):
            raise ValueError(f"{name}: expected a fraction in (0, 1], got {tau}")


def _stat(stats: dict, name: str) -> NDArray:
    if name not in stats:
        raise ValueError(f"stats: missing {name!r}; expected the output of group_statistics")
    return np.asarray(stats[name], dtype=np.float64)


def classify_groups(
    stats: dict[str, ArrayLike],
    *,
    tau_void: float = Thresholds.tau_void,
    tau_cluster: float = Thresholds.tau_cluster,
) -> NDArray[np.int8]:
    """Label each group void (0), cluster (1) or other (2) (docs/contracts.md, "Void and
    cluster definitions").

    * void: mean κ < 0 and void_fraction ≥ ``tau_void``;
    * cluster: cluster_fraction ≥ ``tau_cluster``;
    * a group that passes both tests takes the type with the larger *relative* margin,
      (f − τ)/τ, so that the two fractions, which live on very different scales (the default
      thresholds differ by a factor of 40), are compared fairly; an exact tie goes to cluster,
      the rarer and more specific type;
    * otherwise other.

    Parameters
    ----------
    stats : dict
        At least ``mean_kappa_sigma``, ``void_fraction`` and ``cluster_fraction``, (N, G) each.
    tau_void, tau_cluster : float
        Thresholds in (0, 1].

    Returns
    -------
    numpy.ndarray
        (N, G) int8 codes :data:`VOID`, :data:`CLUSTER`, :data:`OTHER`.
    """
    check_tau(tau_void, tau_cluster)
    mean = _stat(stats, "mean_kappa_sigma")
    fv, fc = _stat(stats, "void_fraction"), _stat(stats, "cluster_fraction")
    is_void = (mean < 0) & (fv >= tau_void)
    is_cluster = fc >= tau_cluster
    void_wins = (fv - tau_void) / tau_void > (fc - tau_cluster) / tau_cluster
    types = np.full(fv.shape, OTHER, dtype=np.int8)
    types[is_cluster] = CLUSTER
    types[is_void & (~is_cluster | void_wins)] = VOID
    return types


def purity(
    stats: dict[str, ArrayLike],
    selected: ArrayLike,
    *,
    tau_void: float = Thresholds.tau_void,
    tau_cluster: float = Thresholds.tau_cluster,
) -> float:
    """The anchor's purity: the mean of 2·P rates over the masks that explain each parameter.

    For each parameter p, over the masks with ``selected[n, g, p]``: the fraction with
    cluster_fraction > ``tau_cluster`` and the fraction with void_fraction > ``tau_void``
    (strict inequalities and no mean-κ condition, as in the anchor). A parameter that selects
    no mask at all contributes no rates (they are undefined).

    Parameters
    ----------
    stats : dict
        ``void_fraction`` and ``cluster_fraction``, (N, G).
    selected : array_like
        (N, G, P) bool: which masks explain parameter p (SOP: weight > 0; a single full mask
        per map for methods without groups: G = 1, all True).
    tau_void, tau_cluster : float
        Thresholds in (0, 1].

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On mismatched shapes or when no mask is selected for any parameter.
    """
    check_tau(tau_void, tau_cluster)
    fv, fc = _stat(stats, "void_fraction"), _stat(stats, "cluster_fraction")
    sel = np.asarray(selected).astype(bool)
    if sel.ndim != 3 or sel.shape[:2] != fv.shape:
        raise ValueError(f"selected: expected (N, G, P) with (N, G) = {fv.shape}, got {sel.shape}")
    rates = []
    for p in range(sel.shape[2]):
        s = sel[..., p]
        if s.any():
            rates += [float((fc[s] > tau_cluster).mean()), float((fv[s] > tau_void).mean())]
    if not rates:
        raise ValueError("selected: no mask is selected for any parameter; purity is undefined")
    return float(np.mean(rates))


def type_weights(weights: ArrayLike, types: ArrayLike) -> NDArray[np.float64]:
    """Summed selector weights per group type: (N, G, P), (N, G) → (N, P, 3)."""
    w = np.asarray(weights, dtype=np.float64)
    t = np.asarray(types)
    if w.ndim != 3 or t.shape != w.shape[:2]:
        raise ValueError(f"weights (N, G, P) and types (N, G) do not match: {w.shape}, {t.shape}")
    onehot = (t[..., None] == np.arange(len(TYPE_NAMES))).astype(np.float64)  # (N, G, 3)
    return np.einsum("ngp,ngt->npt", w, onehot)


def group_type_rates(types: ArrayLike) -> dict[str, float]:
    """Share of all groups of each type: {type: fraction}."""
    t = np.asarray(types)
    return {tn: float((t == i).mean()) for i, tn in enumerate(TYPE_NAMES)}
