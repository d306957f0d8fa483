"""The figure a cosmologist reads first: the SOP's predictions against the truth per test
cosmology (:func:`predicted_vs_true`), from ``summary.json``'s ``per_cosmology`` and ``skill``.

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

__all__ = ["predicted_vs_true"]


def _r2_text(skill: dict[str, Any], name: str) -> str:
    r2 = skill.get("r2", {}).get(name)
    text = "undefined" if r2 is None else f"{r2:.2f}"
    seeds = skill.get("r2_per_seed", {}).get(name) or []
    if len(seeds) > 1:
        text += " (seeds " + ", ".join("–" if v is None else f"{v:.2f}" for v in seeds) + ")"
    return text


def predicted_vs_true(path: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """One panel per parameter: each test cosmology's mean prediction ± std vs its truth.

    The mean and the std are over the cosmology's maps and the training seeds
    (``per_cosmology``); thin grey ticks are each seed's mean. The diagonal is a perfect
    prediction, the dashed line the training mean (the constant predictor, R² ≤ 0). The title
    gives the test R² over maps (mean over seeds, then per seed).

    Parameters
    ----------
    path : path-like
        The PNG to write.
    summary : dict
        The analysis summary (``per_cosmology``, ``param_names``, ``skill``, ``train_mean``).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    rows = summary["per_cosmology"]
    names = list(summary["param_names"])
    skill = summary.get("skill", {})
    n_seeds = len(summary.get("seeds", [])) or 1
    fig = Figure(figsize=(0.6 + 3.6 * len(names), 3.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(names)))
    for ax, name in zip(axes, names, strict=True):
        true = np.array([r["true"][name] for r in rows])
        mean = np.array([r["pred_mean"][name] for r in rows])
        std = np.array([r["pred_std"][name] for r in rows])
        seeds = [r.get("pred_seed_mean", {}).get(name, []) for r in rows]
        if n_seeds > 1:
            xs = [t for t, v in zip(true, seeds, strict=True) for _ in v]
            ax.plot(xs, [y for v in seeds for y in v], "_", color="0.35", ms=9, zorder=3,
                    label="mean of one seed")  # fmt: skip
        ax.errorbar(true, mean, yerr=std, fmt="o", color="tab:red", ms=5, capsize=3, lw=1,
                    zorder=2, label="mean ± std over maps and seeds")  # fmt: skip
        lo = float(min(true.min(), (mean - std).min()))
        hi = float(max(true.max(), (mean + std).max()))
        pad = 0.05 * (hi - lo or 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=1, label="truth")
        if name in summary.get("train_mean", {}):
            ax.axhline(summary["train_mean"][name], color="0.4", ls="--", lw=1,
                       label="training mean")  # fmt: skip
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        ax.set_xlabel(f"true {label(name)}")
        ax.set_ylabel(f"predicted {label(name)}")
        ax.set_title(f"{label(name)}: test R² {_r2_text(skill, name)}", fontsize=9)
    fig.suptitle(f"SOP predictions of {len(rows)} test cosmologies × {n_seeds} seed(s)",
                 fontsize=10)  # fmt: skip
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="outside lower center",
               ncols=4)  # fmt: skip
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path
