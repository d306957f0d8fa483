"""The per-model pass of the void/cluster analysis (:mod:`sop_cosmo.cosmo.stages.analyse`).

:func:`explain_maps` runs one SOP model over every analysed map and measures its groups, in
noise units on every bin or with the anchor's per-patch rule; :func:`by_bin` types each bin
alone; :func:`group_rows` lays the groups out as the rows of ``groups.csv``;
:func:`type_base_rates` types random masks of the selected groups' sizes
(:mod:`sop_cosmo.cosmo.maths.base_rates`); :func:`region_importance_of` measures ΔMSE when
the void or cluster pixels are replaced by the baseline or by a Gaussianised copy
(:mod:`sop_cosmo.cosmo.maths.occlusion`). No file I/O.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from sop_cosmo._progress import progress_bar, progress_write
from sop_cosmo.cosmo.config import AnalyzeConfig
from sop_cosmo.cosmo.contracts.patchfile import PatchArrays
from sop_cosmo.cosmo.dataset import Normalization
from sop_cosmo.cosmo.maths.base_rates import random_grid_masks, share_intervals, type_shares
from sop_cosmo.cosmo.maths.bootstrap import contributions
from sop_cosmo.cosmo.maths.group_types import (
    STAT_NAMES,
    TYPE_NAMES,
    classify_groups,
    cluster_fraction,
    cluster_fraction_nu,
    group_statistics,
    group_statistics_nu,
    group_type_rates,
    upsample_masks,
)
from sop_cosmo.cosmo.maths.occlusion import (
    Predictor,
    phase_randomise,
    region_importance,
    region_masks_nu,
    region_masks_patch,
)
from sop_cosmo.cosmo.maths.selection import map_indices

__all__ = [
    "by_bin",
    "explain_maps",
    "group_rows",
    "masked_predictor",
    "region_importance_of",
    "type_base_rates",
]


def _typing_stats(
    kb: NDArray, pix: NDArray, cfg: AnalyzeConfig, sigma_noise: NDArray | None, b_index: int
) -> tuple[dict[str, NDArray], dict[str, NDArray] | None]:
    """Group statistics by the configured rule: pooled over bins in noise units (with the
    per-bin ones), else the per-patch rule on bin ``b_index`` (per-bin None)."""
    if sigma_noise is not None:
        return group_statistics_nu(kb, pix, sigma_noise, nu_void=cfg.nu_void,
                                   nu_cluster=cfg.nu_cluster)  # fmt: skip
    stats = group_statistics(kb[:, b_index], pix, void_sigma=cfg.void_sigma,
                             cluster_sigma=cfg.cluster_sigma)  # fmt: skip
    return stats, None


def explain_maps(
    model: torch.nn.Module,
    norm: Normalization,
    patches: PatchArrays,
    cfg: AnalyzeConfig,
    *,
    b_index: int,
    sigma_noise: NDArray | None,
    patch: int | None,
    sweep_sigmas: Sequence[float],
    desc: str,
    progress: bool,
) -> dict[str, Any]:
    """One SOP model on every analysed map: masks, weights, outputs, predictions (physical),
    group statistics (pooled over bins in noise units, with ``per_bin``) and the sweep's
    cluster fractions."""
    kappa = patches.kappa
    n, _, h, w = kappa.shape
    dev = next(model.parameters()).device
    mean = np.asarray(norm.input_mean, dtype=np.float32)[:, None, None]
    std = np.asarray(norm.input_std, dtype=np.float32)[:, None, None]
    noise = sigma_noise is not None
    masks_l, weights_l, outputs_l, preds_l, stats_l, bins_l = [], [], [], [], [], []
    sweep_l: dict[float, list[NDArray]] = {s: [] for s in sweep_sigmas}
    bar = progress_bar(total=n, disable=not progress, desc=desc, unit="map")
    with torch.no_grad():
        for s in range(0, n, cfg.batch_size):
            x = torch.from_numpy((kappa[s : s + cfg.batch_size] - mean) / std).to(dev)
            res = model.explain(x)
            grid = (res.masks.float().cpu().numpy() > 0.5).astype(np.uint8)
            masks_l.append(grid)
            weights_l.append(res.weights.float().cpu().numpy())
            outputs_l.append(res.group_outputs.float().cpu().numpy())
            preds_l.append(res.prediction.float().cpu().numpy())
            pix = upsample_masks(grid, (h, w), patch=patch)
            kb = kappa[s : s + cfg.batch_size].astype(np.float64)
            pooled, per_bin = _typing_stats(kb, pix, cfg, sigma_noise, b_index)
            stats_l.append(pooled)
            bins_l.append(per_bin)
            for cs in sweep_sigmas:
                sweep_l[cs].append(cluster_fraction_nu(kb, pix, sigma_noise, cs) if noise
                                   else cluster_fraction(kb[:, b_index], pix, cs))  # fmt: skip
            bar.update(len(x))
    bar.close()
    t_mean, t_std = np.asarray(norm.target_mean), np.asarray(norm.target_std)
    run: dict[str, Any] = {
        "masks": np.concatenate(masks_l),
        "weights": np.concatenate(weights_l).astype(np.float64),
        # Weights sum to 1 over groups, so mean + std·Σ w·y = Σ w·(mean + std·y): the
        # physical group outputs keep the prediction a weighted sum.
        "outputs": np.concatenate(outputs_l) * t_std + t_mean,
        "preds": np.concatenate(preds_l) * t_std + t_mean,
        "stats": {k: np.concatenate([d[k] for d in stats_l]) for k in STAT_NAMES},
        "sweep_cf": {cs: np.concatenate(v) for cs, v in sweep_l.items()},
        "train_mean": t_mean,
    }
    if noise:
        run["per_bin"] = {k: np.concatenate([d[k] for d in bins_l]) for k in STAT_NAMES}
    return run


def by_bin(
    runs: Sequence[dict[str, Any]], labels: Sequence[int], names: list[str], cosmo_id: NDArray,
    cfg: AnalyzeConfig,
) -> dict[str, Any]:  # fmt: skip
    """Noise units: the typing of each bin alone (type rates, contributions, differences per
    bin label), from the runs' ``per_bin`` statistics."""
    weights = np.stack([r["weights"] for r in runs])
    out = {}
    for b, lab in enumerate(labels):
        types = np.stack([
            classify_groups({k: r["per_bin"][k][..., b] for k in STAT_NAMES},
                            tau_void=cfg.tau_void, tau_cluster=cfg.tau_cluster)
            for r in runs
        ])  # fmt: skip
        c = contributions(weights, types, names, cosmo_id=cosmo_id, n_boot=cfg.n_boot,
                          seed=cfg.seed)  # fmt: skip
        kept = {k: c[k] for k in ("contributions", "differences") if k in c}
        out[str(lab)] = {"group_type_rates": group_type_rates(types), **kept}
    return out


def group_rows(
    runs: Sequence[dict[str, Any]], names: Sequence[str], idx: NDArray, cosmo_id: NDArray
) -> list[dict[str, Any]]:
    """Rows of ``groups.csv``: one per seed, map and group (statistics, weights, outputs)."""
    rows = []
    for r in runs:
        stats, types, weights, outputs = r["stats"], r["types"], r["weights"], r["outputs"]
        n, g = types.shape
        for i in range(n):
            for j in range(g):
                row: dict[str, Any] = {
                    "seed": r["seed"],
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


def masked_predictor(
    model: torch.nn.Module, norm: Normalization, *, baseline: float, batch_size: int,
    desc: str = "", progress: bool = False,
) -> Predictor:  # fmt: skip
    """A :data:`~sop_cosmo.cosmo.maths.occlusion.Predictor` of a pixel model: it standardises
    κ with ``norm``, sets the masked pixels to ``baseline`` (standardised units, the model's
    own masking value) and returns physical predictions."""
    dev = next(model.parameters()).device
    mean = np.asarray(norm.input_mean, dtype=np.float32)[:, None, None]
    std = np.asarray(norm.input_std, dtype=np.float32)[:, None, None]
    t_mean, t_std = np.asarray(norm.target_mean), np.asarray(norm.target_std)

    def predict(kappa: NDArray, replace: NDArray | None) -> NDArray:
        out = []
        with torch.no_grad():
            for s in progress_bar(range(0, len(kappa), batch_size), desc=desc, disable=not progress,
                          unit="batch", leave=False):  # fmt: skip
                x = ((kappa[s : s + batch_size] - mean) / std).astype(np.float32)
                if replace is not None:
                    x = np.where(replace[s : s + batch_size], np.float32(baseline), x)
                res = model(torch.from_numpy(x).to(dev))
                res = getattr(res, "prediction", res)  # an SOP output or a tensor
                out.append(res.float().cpu().numpy())
        return np.concatenate(out) * t_std + t_mean

    return predict


def region_importance_of(
    loaded: Sequence[tuple[torch.nn.Module, Any]], patches: PatchArrays, cfg: AnalyzeConfig,
    *, sigma_noise: NDArray | None, b_index: int, runs: Sequence[dict[str, Any]],
    progress: bool,
) -> dict[str, Any]:  # fmt: skip
    """``summary.json``'s ``region_importance`` (``"baseline"``),
    ``region_importance_gaussianised`` (``"gaussianised"``) and ``region_importance_maps``
    (``"n_maps"``): ΔMSE per region type and parameter
    when the void or cluster pixels (the typing's pixel rule, in ``cfg.type_units``) are
    replaced by each model's baseline, or by the pixels of a phase-randomised copy of the map
    (seeded by ``cfg.seed``), each with the area-matched random control, bootstrapped over test
    cosmologies × seeds like the weight shares (``runs`` give the unreplaced predictions).
    Each replacement is a forward pass of every seed's SOP over the maps, so it runs on at most
    ``cfg.region_maps`` of them, spread evenly over the file (ordered by cosmology, so each
    cosmology keeps about its share while ``region_maps`` is well above their number)."""
    keep = map_indices(len(patches.kappa), cfg.region_maps)
    kappa, params, cosmo_id = patches.kappa[keep], patches.params[keep], patches.cosmo_id[keep]
    if sigma_noise is not None:
        regions = region_masks_nu(kappa, sigma_noise, nu_void=cfg.nu_void,
                                  nu_cluster=cfg.nu_cluster)  # fmt: skip
    else:
        regions = region_masks_patch(kappa, b_index, void_sigma=cfg.void_sigma,
                                     cluster_sigma=cfg.cluster_sigma)  # fmt: skip
    predictors = [
        masked_predictor(model, Normalization.from_dict(ckpt.norm),
                         baseline=float(ckpt.options.get("baseline", 0.0)),
                         batch_size=cfg.batch_size, progress=progress,
                         desc=f"region importance seed {i + 1}/{len(loaded)}")
        for i, (model, ckpt) in enumerate(loaded)
    ]  # fmt: skip
    names = list(Normalization.from_dict(loaded[0][1].norm).param_names)
    gaussian = phase_randomise(kappa, np.random.default_rng([int(cfg.seed), 22]))
    out = {}
    for replacement, surrogate in (("baseline", None), ("gaussianised", gaussian)):
        t0 = time.perf_counter()
        out[replacement] = region_importance(
            predictors, kappa, params, regions, names, cosmo_id=cosmo_id, n_boot=cfg.n_boot,
            seed=cfg.seed, references=[r["preds"][keep] for r in runs], surrogate=surrogate,
        )  # fmt: skip
        if progress:
            progress_write(f"analyze: region importance, {replacement} replacement, on "
                           f"{len(keep)} maps × {len(loaded)} seed(s) "
                           f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip
    out["n_maps"] = len(keep)
    return out


def type_base_rates(
    runs: Sequence[dict[str, Any]], patches: PatchArrays, cfg: AnalyzeConfig, *,
    sigma_noise: NDArray | None, b_index: int, patch: int | None, names: Sequence[str],
) -> dict[str, Any]:  # fmt: skip
    """``summary.json``'s ``type_base_rates``: the type shares of every seed's selected groups
    (``generator``) next to those of random masks with as many attention cells on the same
    maps (``random``, seeded by ``cfg.seed``), typed by the same rule; by count, and
    ``weighted`` by each parameter's selector weights; ``ci95`` holds 95% CIs of both shares
    and of generator − random over test cosmologies × seeds."""
    kappa = patches.kappa
    n, _, h, w = kappa.shape
    rng = np.random.default_rng([int(cfg.seed), 21])  # the base rates' own stream
    drawn = []  # (N, G) per seed
    for r in runs:
        per_seed = []
        for s in range(0, n, cfg.batch_size):
            grid = random_grid_masks(r["masks"][s : s + cfg.batch_size], rng)
            pix = upsample_masks(grid, (h, w), patch=patch)
            kb = kappa[s : s + cfg.batch_size].astype(np.float64)
            stats, _ = _typing_stats(kb, pix, cfg, sigma_noise, b_index)
            per_seed.append(classify_groups(stats, tau_void=cfg.tau_void,
                                            tau_cluster=cfg.tau_cluster))  # fmt: skip
        drawn.append(np.concatenate(per_seed))
    weights = np.stack([r["weights"] for r in runs])
    types = np.stack([r["types"] for r in runs])
    flat_w = weights.reshape(-1, *weights.shape[2:])
    own = type_shares(types.reshape(-1, types.shape[-1]), flat_w, names)
    rand = type_shares(np.concatenate(drawn), flat_w, names)
    ci = share_intervals(types, np.stack(drawn), weights, names, units=patches.cosmo_id,
                         n_boot=cfg.n_boot, seed=int(cfg.seed))  # fmt: skip
    return {
        "generator": own["groups"],
        "random": rand["groups"],
        "weighted": {"generator": own["weighted"], "random": rand["weighted"]},
        "ci95": ci,
        "n_maps": int(n),
        "n_seeds": len(runs),
        "n_selected_groups": int((weights > 0).any(-1).sum()),
    }
