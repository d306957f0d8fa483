"""The model-agnostic importance of the void and cluster regions as a figure
(:func:`region_importance_bars`), from ``summary.json``'s ``region_importance`` (baseline
replacement) and ``region_importance_gaussianised``.

Drawn with matplotlib's object API (no pyplot), written atomically, like
:mod:`sop_cosmo.cosmo.figures`, whose ``write_figures`` calls it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from sop_cosmo._io import atomic_path
from sop_cosmo.cosmo.maths.claims import label

__all__ = ["REPLACEMENTS", "region_importance_bars"]

#: The replacements drawn: (summary key, legend name, colour), in bar order.
REPLACEMENTS: tuple[tuple[str, str, str], ...] = (
    ("region_importance", "baseline", "#4c4c4c"),
    ("region_importance_gaussianised", "gaussianised", "#e08a1e"),
)


def _bar(ax: Any, x: float, value: float, ci: list[float], **style: Any) -> None:
    err = np.abs([[value - ci[0]], [ci[1] - value]])
    ax.bar([x], [value], yerr=err, capsize=3, error_kw={"lw": 1}, **style)


def region_importance_bars(path: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """One panel per parameter: ΔMSE when the void or the cluster pixels are replaced.

    For each region type, a solid bar per replacement (the model's baseline; the pixels of a
    phase-randomised copy of the map, same spectrum, Gaussian) and beside it a hatched bar for
    as many random pixels replaced the same way, each with its 95% CI over test cosmologies ×
    seeds. A gaussianised bar well above 0 is importance carried by the region's non-Gaussian
    structure; the baseline bar also holds what its Gaussian part carries.

    Parameters
    ----------
    path : path-like
        The PNG to write.
    summary : dict
        The analysis summary (``region_importance``, optionally
        ``region_importance_gaussianised``, ``param_names``).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    shown = [r for r in REPLACEMENTS if r[0] in summary]
    first = summary[shown[0][0]]
    types = list(first)
    names = list(summary.get("param_names", next(iter(first.values()))))
    fig = Figure(figsize=(0.8 + 3.4 * len(names), 3.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names), sharey=False))
    width = 0.8 / (2 * len(shown))
    for ax, name in zip(axes, names, strict=True):
        for j, (key, legend, color) in enumerate(shown):
            for i, t in enumerate(types):
                e = summary[key][t][name]
                x = i - 0.4 + width * (2 * j + 0.5)
                _bar(ax, x, e["delta_mse"], e["ci95"], width=width, color=color,
                     label=legend if i == 0 else None)  # fmt: skip
                _bar(ax, x + width, e["random_delta_mse"], e["random_ci95"], width=width,
                     color="white", edgecolor=color, hatch="///",
                     label=f"{legend}, random pixels" if i == 0 else None)  # fmt: skip
        ax.axhline(0, color="k", lw=0.8)
        # the replaced share of the (pixel, bin) values: a big region can matter by size alone
        ticks = [f"{t}\n({first[t][name]['area_fraction']:.0%} replaced)" for t in types]
        ax.set_xticks(range(len(types)), ticks)
        ax.set_ylabel(f"ΔMSE of {label(name)} (physical units)")
        ax.set_title(f"{label(name)}: MSE(replaced) − MSE(original)", fontsize=9)
    boot = summary.get("bootstrap", {})
    over = (f"{boot['n_cosmologies']} cosmologies × {boot['n_seeds']} seed(s)" if boot
            else f"{summary.get('n_maps', '?')} maps")  # fmt: skip
    fig.suptitle(f"region importance, 95% CI over {over}", fontsize=10)
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="outside lower center",
               ncols=2 * len(shown))  # fmt: skip
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path
