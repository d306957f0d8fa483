"""Void / cluster analysis of a trained SOP regressor (DESIGN.md §3.3–3.4).

For every analysed test patch the SOP model gives G group masks over its attention grid and,
per parameter p, selector weights ``w[g, p] ≥ 0`` that sum to 1 over the groups. This module

1. measures each group on the *physical* convergence κ of one tomographic bin
   (:func:`group_statistics`): mean κ/σ, the fraction of void pixels (κ < void_sigma·σ) and of
   cluster pixels (κ > cluster_sigma·σ), and the peaks and minima inside it;
2. labels each group void, cluster or other (:func:`classify_groups`);
3. sums the weights of each group type per map and parameter and averages them over maps, with
   percentile-bootstrap CIs over maps; the Ωm − σ8 differences use a *paired* bootstrap (the
   same resampled maps for both parameters) (:func:`contributions`);
4. scores the anchor's purity (:func:`purity`) and sweeps the thresholds;
5. writes ``summary.json``, ``groups.csv``, ``groups.h5``, ``threshold_sweep.csv`` and the figures
   (:func:`analyze`).

See ``docs/analysis.md`` for the definitions and how to read the outputs.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from tqdm.auto import tqdm

from sop_cosmo._io import atomic_path
from sop_cosmo.cosmo.stats import find_minima_batch, find_peaks_batch

__all__ = [
    "CLUSTER",
    "OTHER",
    "STAT_NAMES",
    "SWEEP_CLUSTER_SIGMA",
    "SWEEP_TAU_CLUSTER",
    "SWEEP_TAU_VOID",
    "TYPE_NAMES",
    "VOID",
    "analyze",
    "bootstrap_means",
    "classify_groups",
    "contributions",
    "group_statistics",
    "load_sop_checkpoint",
    "map_indices",
    "percentile_ci",
    "purity",
    "resolve_bin",
    "threshold_sweep",
    "type_weights",
    "upsample_masks",
]

log = logging.getLogger(__name__)

#: Group type codes (int8 in the outputs) and their names, in code order.
VOID, CLUSTER, OTHER = 0, 1, 2
TYPE_NAMES: tuple[str, ...] = ("void", "cluster", "other")
#: Keys of :func:`group_statistics`, each an (N, G) array.
STAT_NAMES: tuple[str, ...] = (
    "mean_kappa_sigma",
    "void_fraction",
    "cluster_fraction",
    "n_peaks",
    "n_minima",
    "mask_fraction",
)
#: Default grids of the threshold sweep (the run's own thresholds are always added).
SWEEP_TAU_VOID: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SWEEP_TAU_CLUSTER: tuple[float, ...] = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1)
SWEEP_CLUSTER_SIGMA: tuple[float, ...] = (2.0, 3.0, 4.0)

_CONTRACT_PAIR = ("Om", "s8")
_LEVEL = 0.95


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
    k: NDArray, m: NDArray, thresholds: NDArray, *, above: bool
) -> tuple[NDArray, NDArray]:
    """(N, G) fraction of each mask's pixels above (or below) a per-map threshold, and areas."""
    n, g = m.shape[:2]
    mf = m.reshape(n, g, -1).astype(np.float32)
    hit = (k > thresholds[:, None, None]) if above else (k < thresholds[:, None, None])
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
    void_sigma: float = 0.0,
    cluster_sigma: float = 3.0,
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
        :func:`~sop_cosmo.cosmo.stats.find_peaks_batch`, whose first plateau pixel lies in the
        group) and ``mask_fraction`` (group area / patch
        area). An empty group has all statistics 0.

    Raises
    ------
    ValueError
        On mismatched shapes, non-finite κ, or a constant map (σ = 0).
    """
    k, m = _check_kappa_masks(kappa, masks)
    sigma = _sigma(k)
    n, g = m.shape[:2]
    void, area = _pixel_fractions(k, m, void_sigma * sigma, above=False)
    cluster, _ = _pixel_fractions(k, m, cluster_sigma * sigma, above=True)
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


def _cluster_fraction(kappa: NDArray, masks: NDArray, cluster_sigma: float) -> NDArray:
    # One statistic only, for the sweep over cluster_sigma.
    k, m = _check_kappa_masks(kappa, masks)
    return _pixel_fractions(k, m, cluster_sigma * _sigma(k), above=True)[0]


# ---------------------------------------------------------------------------- classification


def _check_tau(tau_void: float, tau_cluster: float) -> None:
    for name, tau in (("tau_void", tau_void), ("tau_cluster", tau_cluster)):
        if not (0 < float(tau) <= 1):
            raise ValueError(f"{name}: expected a fraction in (0, 1], got {tau}")


def _stat(stats: dict, name: str) -> NDArray:
    if name not in stats:
        raise ValueError(f"stats: missing {name!r}; expected the output of group_statistics")
    return np.asarray(stats[name], dtype=np.float64)


def classify_groups(
    stats: dict[str, ArrayLike], *, tau_void: float = 0.6, tau_cluster: float = 0.015
) -> NDArray[np.int8]:
    """Label each group void (0), cluster (1) or other (2) (DESIGN.md §3.4).

    * void: mean κ < 0 and void_fraction ≥ ``tau_void``;
    * cluster: cluster_fraction ≥ ``tau_cluster``;
    * a group that passes both tests takes the type with the larger *relative* margin,
      (f − τ)/τ, so that the two fractions, which live on very different scales (≈0.6 vs
      ≈0.015), are compared fairly; an exact tie goes to cluster, the rarer and more specific
      type;
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
    _check_tau(tau_void, tau_cluster)
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
    tau_void: float = 0.6,
    tau_cluster: float = 0.015,
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
    _check_tau(tau_void, tau_cluster)
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


# ------------------------------------------------------------------------------- bootstrap


def type_weights(weights: ArrayLike, types: ArrayLike) -> NDArray[np.float64]:
    """Summed selector weights per group type: (N, G, P), (N, G) → (N, P, 3)."""
    w = np.asarray(weights, dtype=np.float64)
    t = np.asarray(types)
    if w.ndim != 3 or t.shape != w.shape[:2]:
        raise ValueError(f"weights (N, G, P) and types (N, G) do not match: {w.shape}, {t.shape}")
    onehot = (t[..., None] == np.arange(len(TYPE_NAMES))).astype(np.float64)  # (N, G, 3)
    return np.einsum("ngp,ngt->npt", w, onehot)


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


def percentile_ci(boot: ArrayLike, level: float = _LEVEL) -> NDArray[np.float64]:
    """Percentile interval of bootstrap replicates: (n_boot, ...) → (..., 2) [lo, hi]."""
    b = np.asarray(boot, dtype=np.float64)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(b, [alpha, 1.0 - alpha], axis=0)
    return np.stack([lo, hi], axis=-1)


def _difference_pair(names: Sequence[str]) -> tuple[int, int]:
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
    n_boot: int = 1000,
    seed: int = 0,
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
        a, b = _difference_pair(names)
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


def _rates(types: NDArray) -> dict[str, float]:
    return {tn: float((types == i).mean()) for i, tn in enumerate(TYPE_NAMES)}


# ------------------------------------------------------------------------------------ sweep


def threshold_sweep(
    stats: dict[str, ArrayLike],
    cluster_fractions: dict[float, ArrayLike],
    weights: ArrayLike,
    param_names: Sequence[str],
    *,
    tau_void: Sequence[float] = SWEEP_TAU_VOID,
    tau_cluster: Sequence[float] = SWEEP_TAU_CLUSTER,
) -> list[dict[str, float]]:
    """Contributions (means), type rates and purity on a grid of thresholds.

    Parameters
    ----------
    stats : dict
        :func:`group_statistics` output (its ``cluster_fraction`` is replaced per sigma).
    cluster_fractions : dict of float to array_like
        (N, G) cluster fractions for each cluster_sigma of the sweep.
    weights : array_like
        (N, G, P) selector weights.
    param_names : sequence of str
        P names (columns ``{name}_{type}``).
    tau_void, tau_cluster : sequence of float
        Grids.

    Returns
    -------
    list of dict
        One row per (cluster_sigma, tau_void, tau_cluster).
    """
    w = np.asarray(weights, dtype=np.float64)
    selected = w > 0
    rows = []
    for cs in sorted(cluster_fractions):
        st = {**stats, "cluster_fraction": np.asarray(cluster_fractions[cs])}
        for tv in sorted(set(tau_void)):
            for tc in sorted(set(tau_cluster)):
                types = classify_groups(st, tau_void=tv, tau_cluster=tc)
                contrib = type_weights(w, types).mean(0)  # (P, 3)
                row: dict[str, float] = {"cluster_sigma": cs, "tau_void": tv, "tau_cluster": tc}
                row.update({f"rate_{tn}": v for tn, v in _rates(types).items()})
                for j, name in enumerate(param_names):
                    for i, tn in enumerate(TYPE_NAMES):
                        row[f"{name}_{tn}"] = float(contrib[j, i])
                row["purity"] = purity(st, selected, tau_void=tv, tau_cluster=tc)
                rows.append(row)
    return rows


# ---------------------------------------------------------------------------------- analyze


def map_indices(n_total: int, max_maps: int | None) -> NDArray[np.int64]:
    """Rows of the patch file to analyse: all, or ``max_maps`` spread evenly over the file.

    Test files are ordered by cosmology, so taking the first rows would see few cosmologies;
    evenly spaced rows (first and last included) see them all, without any randomness.
    """
    if max_maps is None or max_maps >= n_total:
        return np.arange(n_total, dtype=np.int64)
    if max_maps < 1:
        raise ValueError(f"max_maps: expected ≥ 1, got {max_maps}")
    return np.unique(np.round(np.linspace(0, n_total - 1, int(max_maps))).astype(np.int64))


def load_sop_checkpoint(
    checkpoint: str | os.PathLike, device: str = "auto", *, purpose: str = "the analysis"
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a ``sop`` checkpoint, turning every failure into a ValueError that says what to do.

    Parameters
    ----------
    checkpoint : path-like
        ``RUN/model.pt`` of a ``sop-cosmo train --model sop`` run.
    device : str
        "auto", "cpu" or "cuda[:N]".
    purpose : str
        Who needs SOP groups, for the message when the checkpoint holds another model.

    Returns
    -------
    model, checkpoint dict
        As :func:`sop_cosmo.cosmo.train.load_model`.

    Raises
    ------
    ValueError
        On a missing or foreign file, an unavailable device, or a non-SOP model.
    """
    from sop_cosmo.cosmo.train import load_model

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ValueError(f"checkpoint: {checkpoint}: no such file; give RUN/model.pt of a sop run")
    try:
        model, ckpt = load_model(checkpoint, device)
    except (ValueError, RuntimeError) as err:
        if "device" in str(err):  # e.g. --device cuda without a GPU: the message says so
            raise ValueError(str(err)) from err
        raise ValueError(f"checkpoint: {checkpoint}: cannot load ({err})") from err
    except Exception as err:  # torch.load raises assorted unpickling errors on a foreign file
        raise ValueError(
            f"checkpoint: {checkpoint}: not a sop-cosmo checkpoint ({type(err).__name__}: {err})"
        ) from err
    kind = ckpt.get("model_args", {}).get("kind")
    if kind != "sop" or not hasattr(model, "explain"):
        raise ValueError(
            f"checkpoint: {checkpoint} holds a {kind!r} model, not a sop checkpoint; {purpose} "
            "needs SOP groups: give the model.pt of a `sop-cosmo train --model sop` run"
        )
    return model, ckpt


def _read_patches(
    data: Path, norm: Any, indices_for: Any
) -> tuple[NDArray, NDArray, NDArray, NDArray, dict[str, Any]]:
    from sop_cosmo.cosmo.data import read_attrs

    if not data.is_file():
        raise ValueError(f"data: {data}: no such patch file; give DIR/test.h5")
    attrs = read_attrs(data)  # validates the §3.2 schema
    with h5py.File(data, "r") as f:
        names = [str(v.decode() if isinstance(v, bytes) else v) for v in f["params"].attrs["names"]]
        if names != list(norm.param_names):
            raise ValueError(
                f"data: {data} has parameters {names}, the checkpoint was trained on "
                f"{list(norm.param_names)}"
            )
        n_total, c = f["kappa"].shape[:2]
        if c != len(norm.input_mean):
            raise ValueError(
                f"data: {data} has {c} tomographic bins, the checkpoint was trained on "
                f"{len(norm.input_mean)}"
            )
        idx = indices_for(n_total)
        # A plain slice when every row is read: h5py's point selection is slow on long lists.
        rows = slice(None) if len(idx) == n_total else idx
        kappa = np.asarray(f["kappa"][rows], dtype=np.float32)
        params = np.asarray(f["params"][rows], dtype=np.float32)
        cosmo_id = np.asarray(f["cosmo_id"][rows], dtype=np.int64)
    if not np.isfinite(kappa).all():
        raise ValueError(f"data: {data}: non-finite values in 'kappa'")
    return kappa, params, cosmo_id, idx, attrs


def resolve_bin(
    bin: int, n_bins: int, attrs: dict[str, Any], data: str | os.PathLike
) -> tuple[int, int]:
    """Python bin index → (index in 0..n_bins-1, the bin's label from the file's ``bins``).

    Raises
    ------
    ValueError
        When the index is out of range, naming the file and the valid indices.
    """
    if not -n_bins <= int(bin) < n_bins:
        raise ValueError(
            f"bin: index {bin} is out of range for {data}, which has {n_bins} tomographic "
            f"bins (use 0..{n_bins - 1}, or -1 for the last, highest-redshift bin)"
        )
    index = int(bin) % n_bins
    labels = np.atleast_1d(attrs.get("bins", list(range(1, n_bins + 1)))).astype(int)
    if int(bin) == -1 and labels[index] != labels.max():
        log.warning(
            "bin: -1 is bin %d of %s, not the highest-redshift bin %d (bins are not in "
            "ascending order); pass --bin explicitly",
            labels[index],
            data,
            labels.max(),
        )
    return index, int(labels[index])


def _attention_patch(model: torch.nn.Module, ckpt: dict[str, Any]) -> int | None:
    # The backbone that made the masks is the authority; the stored options are the fallback.
    patch = getattr(getattr(getattr(model, "sop", None), "backbone", None), "patch_size", None)
    if patch is None:
        patch = (ckpt.get("model_args", {}).get("options", {}) or {}).get("attention_patch")
    return int(patch) if patch is not None else None


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        # allow_nan=False: NaN would make the file invalid JSON for strict readers
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def _group_rows(
    stats: dict[str, NDArray],
    types: NDArray,
    weights: NDArray,
    outputs: NDArray,
    names: Sequence[str],
    idx: NDArray,
    cosmo_id: NDArray,
) -> list[dict[str, Any]]:
    rows = []
    n, g = types.shape
    for i in range(n):
        for j in range(g):
            row: dict[str, Any] = {
                "map": i,
                "file_index": int(idx[i]),
                "cosmo_id": int(cosmo_id[i]),
                "group": j,
                "type": TYPE_NAMES[types[i, j]],
            }
            for s in STAT_NAMES:
                v = stats[s][i, j]
                row[s] = int(v) if s.startswith("n_") else float(v)
            for q, name in enumerate(names):
                row[f"weight_{name}"] = float(weights[i, j, q])
            for q, name in enumerate(names):
                row[f"output_{name}"] = float(outputs[i, j, q])
            rows.append(row)
    return rows


def _write_groups_h5(path: Path, arrays: dict[str, NDArray], attrs: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value, compression="gzip", compression_opts=4)
        for key, value in attrs.items():
            f.attrs[key] = value


def analyze(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    void_sigma: float = 0.0,
    cluster_sigma: float = 3.0,
    tau_void: float = 0.6,
    tau_cluster: float = 0.015,
    bin: int = -1,
    max_maps: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
    batch_size: int = 64,
    figures: bool = True,
) -> dict[str, Any]:
    """Run the void/cluster analysis of a trained SOP checkpoint on a patch file.

    Parameters
    ----------
    checkpoint : path-like
        ``RUN/model.pt`` of a ``sop`` run.
    data : path-like
        A patch file (DESIGN.md §3.2), usually ``DIR/test.h5``. The model sees it standardised
        with the checkpoint's statistics; the κ statistics use its physical κ.
    out_dir : path-like
        Output folder (created): ``summary.json``, ``groups.csv``, ``groups.h5``,
        ``threshold_sweep.csv`` and ``figures/``.
    void_sigma, cluster_sigma : float
        Pixel thresholds in units of the patch σ (void: κ < void_sigma·σ; cluster: κ >
        cluster_sigma·σ).
    tau_void, tau_cluster : float
        Group thresholds on the void and cluster pixel fractions.
    bin : int
        Tomographic bin whose κ is analysed (Python index; -1 = the last, highest-redshift bin).
        The model always sees all bins.
    max_maps : int, optional
        Analyse at most this many maps, spread evenly over the file (:func:`map_indices`).
    n_boot : int
        Bootstrap resamples over maps.
    seed : int
        Seed of the bootstrap (the model runs in eval mode and is deterministic on CPU).
    device : str
        "auto", "cpu" or "cuda[:N]".
    progress : bool
        tqdm bar over maps.
    batch_size : int
        Maps per forward pass.
    figures : bool
        Draw the figures (set False to skip matplotlib, e.g. in quick tests).

    Returns
    -------
    dict
        The summary written to ``summary.json``.

    Raises
    ------
    ValueError
        On a missing or non-SOP checkpoint, a missing or mismatched patch file, a bad bin
        index or bad thresholds.
    """
    from sop_cosmo.cosmo.data import Normalization

    _check_tau(tau_void, tau_cluster)
    if int(n_boot) < 1:
        raise ValueError(f"n_boot: expected ≥ 1, got {n_boot}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected ≥ 1, got {batch_size}")
    checkpoint, data, out = Path(checkpoint), Path(data), Path(out_dir)
    model, ckpt = load_sop_checkpoint(checkpoint, device)
    dev = next(model.parameters()).device
    norm = Normalization.from_dict(ckpt["norm"])
    names = list(norm.param_names)
    _difference_pair(names)  # fails early, naming the parameters, when undefined
    kappa, params, cosmo_id, idx, attrs = _read_patches(
        data, norm, lambda n: map_indices(n, max_maps)
    )
    n, c, h, w = kappa.shape
    b_index, b_label = resolve_bin(bin, c, attrs, data)
    patch = _attention_patch(model, ckpt)
    kappa_bin = kappa[:, b_index].astype(np.float64)

    mean = np.asarray(norm.input_mean, dtype=np.float32)[:, None, None]
    std = np.asarray(norm.input_std, dtype=np.float32)[:, None, None]
    sweep_sigmas = sorted({float(s) for s in SWEEP_CLUSTER_SIGMA} | {float(cluster_sigma)})
    masks_l, weights_l, outputs_l, preds_l = [], [], [], []
    stats_l: list[dict[str, NDArray]] = []
    sweep_l: dict[float, list[NDArray]] = {s: [] for s in sweep_sigmas}
    bar = tqdm(total=n, disable=not progress, desc="analyze maps", unit="map")
    with torch.no_grad():
        for s in range(0, n, batch_size):
            x = torch.from_numpy((kappa[s : s + batch_size] - mean) / std).to(dev)
            res = model.explain(x)
            grid = (res.masks.float().cpu().numpy() > 0.5).astype(np.uint8)
            masks_l.append(grid)
            weights_l.append(res.weights.float().cpu().numpy())
            outputs_l.append(res.group_outputs.float().cpu().numpy())
            preds_l.append(res.prediction.float().cpu().numpy())
            pix = upsample_masks(grid, (h, w), patch=patch)
            kb = kappa_bin[s : s + batch_size]
            stats_l.append(
                group_statistics(kb, pix, void_sigma=void_sigma, cluster_sigma=cluster_sigma)
            )
            for cs in sweep_sigmas:
                sweep_l[cs].append(_cluster_fraction(kb, pix, cs))
            bar.update(len(x))
    bar.close()
    masks = np.concatenate(masks_l)
    weights = np.concatenate(weights_l).astype(np.float64)
    t_mean = np.asarray(norm.target_mean)
    t_std = np.asarray(norm.target_std)
    # Weights sum to 1 over groups, so mean + std·Σ w·y = Σ w·(mean + std·y): the physical
    # group outputs keep the prediction a weighted sum.
    outputs = np.concatenate(outputs_l) * t_std + t_mean
    preds = np.concatenate(preds_l) * t_std + t_mean
    stats = {k: np.concatenate([d[k] for d in stats_l]) for k in STAT_NAMES}
    if not (np.isfinite(weights).all() and np.isfinite(outputs).all()):
        raise ValueError(
            f"checkpoint: {checkpoint}: the SOP gives non-finite weights or group outputs on "
            f"{data}; the model has diverged: retrain it (e.g. with a lower learning rate)"
        )
    types = classify_groups(stats, tau_void=tau_void, tau_cluster=tau_cluster)
    selected = weights > 0

    contrib = contributions(weights, types, names, n_boot=n_boot, seed=seed)
    mse = ((preds - params.astype(np.float64)) ** 2).mean(0)
    distinct = float(np.mean([len(np.unique(m.reshape(m.shape[0], -1), axis=0)) for m in masks]))
    summary: dict[str, Any] = {
        "thresholds": {"void_sigma": float(void_sigma), "cluster_sigma": float(cluster_sigma)},
        "contributions": contrib["contributions"],
        "differences": contrib["differences"],
        "group_type_rates": _rates(types),
        "purity": purity(stats, selected, tau_void=tau_void, tau_cluster=tau_cluster),
        "n_maps": int(n),
        # extras (additional top-level keys only)
        "class_thresholds": {"tau_void": float(tau_void), "tau_cluster": float(tau_cluster)},
        "base_rates": contrib["base_rates"],
        "preference": contrib["preference"],
        "difference_params": contrib["difference_params"],
        "active_group_type_rates": {
            name: {
                tn: float((types[selected[..., q]] == i).mean()) for i, tn in enumerate(TYPE_NAMES)
            }
            for q, name in enumerate(names)
        },
        "mean_active_groups": {
            name: float(selected[..., q].sum(1).mean()) for q, name in enumerate(names)
        },
        "mean_distinct_masks": distinct,
        "n_groups": int(masks.shape[1]),
        "attention_patch": patch,
        "bin": b_label,
        "bin_index": b_index,
        "param_names": names,
        "mse": {name: float(v) for name, v in zip(names, mse, strict=True)},
        "mse_mean": float(mse.mean()),
        "n_boot": int(n_boot),
        "seed": int(seed),
        "max_maps": max_maps,
        "checkpoint": str(checkpoint),
        "data": str(data),
    }

    out.mkdir(parents=True, exist_ok=True)
    # An old summary next to new tables would claim a finished run: drop it first.
    (out / "summary.json").unlink(missing_ok=True)
    sweep_cf = {cs: np.concatenate(v) for cs, v in sweep_l.items()}
    sweep = threshold_sweep(
        stats,
        sweep_cf,
        weights,
        names,
        tau_void=sorted(set(SWEEP_TAU_VOID) | {float(tau_void)}),
        tau_cluster=sorted(set(SWEEP_TAU_CLUSTER) | {float(tau_cluster)}),
    )
    _write_csv(out / "threshold_sweep.csv", sweep)
    _write_csv(
        out / "groups.csv", _group_rows(stats, types, weights, outputs, names, idx, cosmo_id)
    )
    arrays = {
        "kappa": kappa_bin.astype(np.float32),
        "masks": masks,
        "weights": weights.astype(np.float32),
        "group_outputs": outputs.astype(np.float32),
        "prediction": preds.astype(np.float32),
        "params": params,
        "types": types,
        "file_index": idx,
        "cosmo_id": cosmo_id,
        **{k: stats[k] for k in STAT_NAMES},
    }
    h5_attrs = {
        "param_names": names,
        "type_names": list(TYPE_NAMES),
        "attention_patch": -1 if patch is None else patch,
        "thresholds": json.dumps(
            {
                "void_sigma": float(void_sigma),
                "cluster_sigma": float(cluster_sigma),
                "tau_void": float(tau_void),
                "tau_cluster": float(tau_cluster),
            }
        ),
        "bin": b_label,
        "bin_index": b_index,
        "group_outputs_units": "physical",
        "checkpoint": str(checkpoint),
        "data": str(data),
    }
    _write_groups_h5(out / "groups.h5", arrays, h5_attrs)
    if figures:
        from sop_cosmo.cosmo import plots

        plots.write_figures(
            out / "figures",
            kappa=kappa_bin,
            masks=masks,
            weights=weights,
            types=types,
            summary=summary,
            sweep=sweep,
            patch=patch,
            pixel_arcmin=attrs.get("pixel_arcmin"),
        )
    _write_json(out / "summary.json", summary)  # last: its presence means the run finished
    log.info("analyze %s on %s: %d maps -> %s", checkpoint, data, n, out)
    return summary
