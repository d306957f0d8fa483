"""The per-model pass of the void/cluster analysis (:mod:`sop_cosmo.cosmo.stages.analyse`).

:func:`explain_maps` runs one SOP model over every analysed map and measures its groups, in
noise units on every bin or with the anchor's per-patch rule; :func:`by_bin` types each bin
alone; :func:`group_rows` lays the groups out as the rows of ``groups.csv``. No file I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from tqdm.auto import tqdm

from sop_cosmo.cosmo.config import AnalyzeConfig
from sop_cosmo.cosmo.contracts.patchfile import PatchArrays
from sop_cosmo.cosmo.dataset import Normalization
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

__all__ = ["by_bin", "explain_maps", "group_rows"]


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
    bar = tqdm(total=n, disable=not progress, desc=desc, unit="map")
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
            if noise:
                pooled, per_bin = group_statistics_nu(
                    kb, pix, sigma_noise, nu_void=cfg.nu_void, nu_cluster=cfg.nu_cluster
                )
                stats_l.append(pooled)
                bins_l.append(per_bin)
                for cs in sweep_sigmas:
                    sweep_l[cs].append(cluster_fraction_nu(kb, pix, sigma_noise, cs))
            else:
                k1 = kb[:, b_index]
                stats_l.append(group_statistics(k1, pix, void_sigma=cfg.void_sigma,
                                                cluster_sigma=cfg.cluster_sigma))  # fmt: skip
                for cs in sweep_sigmas:
                    sweep_l[cs].append(cluster_fraction(k1, pix, cs))
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
