"""The threshold sweep of the void/cluster typing: contributions, type rates and purity on a
grid of thresholds (``threshold_sweep.csv``). A finding that holds at one threshold only is
fragile. Pure maths: no file I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from sop_cosmo.cosmo.maths.group_types import (
    TYPE_NAMES,
    classify_groups,
    group_type_rates,
    purity,
    type_weights,
)

__all__ = ["SWEEP_CLUSTER_SIGMA", "SWEEP_TAU_CLUSTER", "SWEEP_TAU_VOID", "threshold_sweep"]

#: Grids of the threshold sweep (the run's own thresholds are always added).
SWEEP_TAU_VOID: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
SWEEP_TAU_CLUSTER: tuple[float, ...] = (0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1)
SWEEP_CLUSTER_SIGMA: tuple[float, ...] = (2.0, 3.0, 4.0)


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
                row.update({f"rate_{tn}": v for tn, v in group_type_rates(types).items()})
                for j, name in enumerate(param_names):
                    for i, tn in enumerate(TYPE_NAMES):
                        row[f"{name}_{tn}"] = float(contrib[j, i])
                row["purity"] = purity(st, selected, tau_void=tv, tau_cluster=tc)
                rows.append(row)
    return rows
