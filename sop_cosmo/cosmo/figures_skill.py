"""The figure a cosmologist reads first: the SOP's predictions against the truth per test
cosmology (:func:`predicted_vs_true`), from ``summary.json``'s ``per_cosmology`` and ``skill``;
and test R² of several runs side by side (:func:`skill_by_label`: noise levels, the Gaussian-maps
null).

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

__all__ = ["predicted_vs_true", "skill_by_label"]


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


def skill_by_label(path: str | os.PathLike, rows: list[dict[str, Any]], labels: list[str]) -> Path:
    """Test R² against the run's label, one line per model and parameter.

    Parameters
    ----------
    path : path-like
        The PNG to write.
    rows : list of dict
        ``label``, ``model``, ``parameter`` and ``r2`` (None where undefined: not drawn), as
        :func:`sop_cosmo.cosmo.stages.compare.skill_rows` gives them.
    labels : list of str
        The x-axis, in order.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    fig = Figure(figsize=(1.6 + 1.1 * max(len(labels), 2), 3.6), layout="constrained")
    ax = fig.subplots()
    x = {n: i for i, n in enumerate(labels)}
    styles = ("-o", "--s", ":^", "-.v")
    lines = sorted({(r["model"], r["parameter"]) for r in rows})
    models = sorted({m for m, _ in lines})
    params = sorted({p for _, p in lines})
    for model, param in lines:
        points = sorted((x[r["label"]], r["r2"]) for r in rows if r["model"] == model
                        and r["parameter"] == param and r["r2"] is not None)  # fmt: skip
        if points:
            ax.plot(*zip(*points, strict=True), styles[models.index(model) % len(styles)],
                    color=f"C{params.index(param)}", label=f"{model} {label(param)}")  # fmt: skip
    if not ax.lines:  # one test cosmology: constant targets, R² undefined everywhere
        ax.text(0.5, 0.5, "R² undefined (constant test targets)", ha="center",
                transform=ax.transAxes, fontsize=9)  # fmt: skip
    ax.axhline(0.0, color="0.4", ls="--", lw=1, label="training mean (R² 0)")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlim(-0.5, len(labels) - 0.5)
    ax.set_ylabel("test R²")
    ax.legend(fontsize=8)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    return path
