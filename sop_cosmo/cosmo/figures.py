"""Figures of the void/cluster analysis (:mod:`sop_cosmo.cosmo.stages.analyse`) and of the
planted controls (:mod:`sop_cosmo.cosmo.stages.controls`).

Every function draws one PNG with matplotlib's object API (no pyplot state, so nothing here
changes the backend of a notebook that imports it) and writes it atomically. κ is always shown
with a diverging colormap centred on 0, so voids (κ < 0) are blue and overdensities red.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import NDArray

from sop_cosmo._io import atomic_path
from sop_cosmo.cosmo.config import GROUP_TYPES
from sop_cosmo.cosmo.figures_importance import region_importance_bars
from sop_cosmo.cosmo.figures_skill import predicted_vs_true

__all__ = [
    "TYPE_COLORS",
    "contribution_bars",
    "controls_figure",
    "distinct_selected",
    "groups_gallery",
    "sweep_curves",
    "weight_histograms",
    "write_figures",
]

#: Colour of each group type, in the order of :data:`sop_cosmo.cosmo.config.GROUP_TYPES`.
TYPE_COLORS: tuple[str, ...] = ("#1f5fbf", "#d62728", "#7f7f7f")
_PARAM_STYLES = ("-", "--", ":", "-.")


def _save(fig: Figure, path: str | os.PathLike, dpi: int = 110) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")  # constrained layout already fits the labels
    return path


def _outline(
    cells: NDArray, patch: int, shape: tuple[int, int], scale: float, inset: float = 0.0
) -> NDArray:
    """Boundary segments (S, 2, 2) of a group's grid cells, along pixel edges.

    Cell (r, c) covers pixels [r·patch, min((r+1)·patch, H)) × [c·patch, min((c+1)·patch, W));
    a side is drawn where the neighbouring cell is outside the group (or the image), moved
    ``inset`` pixels into the cell so that groups sharing a border stay distinguishable.
    """
    on = np.pad(cells != 0, 1)
    h, w = shape
    gh, gw = cells.shape
    ys = np.minimum(np.arange(gh + 1) * patch, h) - 0.5
    xs = np.minimum(np.arange(gw + 1) * patch, w) - 0.5

    def end_shift(n1: NDArray, n2: NDArray) -> NDArray:
        # A side's end moves inwards at a convex corner (no neighbour cell along the side),
        # stays at a straight join, and moves outwards at a concave corner.
        return np.where(~n1, inset, np.where(~n2, 0.0, -inset))

    segs = []
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r, c = np.nonzero(on[1:-1, 1:-1] & ~on[1 + dr : 1 + dr + gh, 1 + dc : 1 + dc + gw])
        rp, cp = r + 1, c + 1
        if dr:  # a horizontal side at the top (dr = -1) or bottom of the cell
            y = ys[r + (dr > 0)] - dr * inset
            x0 = xs[c] + end_shift(on[rp, cp - 1], on[rp + dr, cp - 1])
            x1 = xs[c + 1] - end_shift(on[rp, cp + 1], on[rp + dr, cp + 1])
            segs.append(np.stack([np.stack([x0, y], 1), np.stack([x1, y], 1)], 1))
        else:
            x = xs[c + (dc > 0)] - dc * inset
            y0 = ys[r] + end_shift(on[rp - 1, cp], on[rp - 1, cp + dc])
            y1 = ys[r + 1] - end_shift(on[rp + 1, cp], on[rp + 1, cp + dc])
            segs.append(np.stack([np.stack([x, y0], 1), np.stack([x, y1], 1)], 1))
    return np.concatenate(segs) * scale


def distinct_selected(masks: NDArray, weights: NDArray) -> list[tuple[int, float, int]]:
    """The distinct non-empty masks among one map's selected groups, heaviest first.

    Groups with equal masks are one region: it is drawn once, with their summed weight, so a
    collapsed generator shows as one outline marked "(k×)", never as k copies on top of each
    other.

    Parameters
    ----------
    masks : numpy.ndarray
        (G, gh, gw) one map's grid masks.
    weights : numpy.ndarray
        (G,) the selector's weights for one parameter.

    Returns
    -------
    list of (int, float, int)
        (first group with that mask, summed weight, number of groups sharing it).
    """
    merged: dict[bytes, list] = {}
    for g in np.argsort(-weights, kind="stable"):
        if weights[g] <= 0 or not masks[g].any():
            continue
        key = np.asarray(masks[g], dtype=bool).tobytes()
        entry = merged.setdefault(key, [int(g), 0.0, 0])
        entry[1] += float(weights[g])
        entry[2] += 1
    return sorted((tuple(e) for e in merged.values()), key=lambda e: -e[1])


def groups_gallery(
    path: str | os.PathLike,
    kappa: NDArray,
    masks: NDArray,
    weights: NDArray,
    types: NDArray,
    param_names: Sequence[str],
    *,
    patch: int | None = None,
    pixel_arcmin: float | None = None,
    n_maps: int = 4,
    bin_label: int | None = None,
) -> Path:
    """κ patches with the outlines of the groups each parameter selects.

    One row per map (``n_maps`` spread evenly over the analysed maps), one column per
    parameter. Each distinct group with weight > 0 for that parameter
    (:func:`distinct_selected`) is outlined in its type's colour, with a line width growing
    with its weight; the weights of the three heaviest are written at their centres.

    Parameters
    ----------
    path : path-like
        Output PNG.
    kappa : numpy.ndarray
        (N, H, W) physical κ of the analysed bin.
    masks : numpy.ndarray
        (N, G, gh, gw) grid masks.
    weights : numpy.ndarray
        (N, G, P) selector weights.
    types : numpy.ndarray
        (N, G) type codes.
    param_names : sequence of str
        Column titles.
    patch : int, optional
        Attention patch size in pixels (see
        :func:`~sop_cosmo.cosmo.maths.group_types.upsample_masks`).
    pixel_arcmin : float, optional
        Pixel side; axes are in arcmin when given, else in pixels.
    n_maps : int
        Rows.
    bin_label : int, optional
        Tomographic bin, for the colorbar label.
    """
    n, h, w = kappa.shape
    rows = np.unique(np.round(np.linspace(0, n - 1, min(n_maps, n))).astype(int))
    n_par = len(param_names)
    scale = float(pixel_arcmin) if pixel_arcmin else 1.0
    unit = "arcmin" if pixel_arcmin else "pixel"
    extent = (-0.5 * scale, (w - 0.5) * scale, (h - 0.5) * scale, -0.5 * scale)
    p = int(patch) if patch else math.ceil(h / masks.shape[-2])
    fig = Figure(figsize=(3.6 * n_par + 0.9, 3.3 * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), n_par, squeeze=False)
    for r, i in enumerate(rows):
        lim = float(np.abs(kappa[i]).max()) or 1.0
        norm = TwoSlopeNorm(vmin=-lim, vcenter=0.0, vmax=lim)
        for q, name in enumerate(param_names):
            ax = axes[r, q]
            im = ax.imshow(kappa[i], cmap="RdBu_r", norm=norm, extent=extent)
            order = distinct_selected(masks[i], weights[i, :, q])
            # heavier groups closer to their true border; lighter ones inset a little more
            step = 0.3 * p / max(1, len(order))
            for rank, (g, wg, copies) in enumerate(order):
                outline = _outline(masks[i, g], p, (h, w), scale, inset=0.3 + rank * step)
                color = TYPE_COLORS[int(types[i, g])]
                ax.add_collection(LineCollection(outline, colors=color, linewidths=0.6 + 3 * wg))
                if rank < 3:
                    # on the group's own cell nearest its centroid, so the label sits inside
                    yy, xx = np.nonzero(masks[i, g])
                    k = np.argmin((yy - yy.mean()) ** 2 + (xx - xx.mean()) ** 2)
                    # the centre of the cell as drawn (a last cell may be cut by the edge)
                    cx = ((xx[k] * p + min((xx[k] + 1) * p, w)) / 2 - 0.5) * scale
                    cy = ((yy[k] * p + min((yy[k] + 1) * p, h)) / 2 - 0.5) * scale
                    box = {"boxstyle": "round,pad=0.1", "fc": "w", "alpha": 0.7, "lw": 0}
                    text = f"{wg:.2f}" if copies == 1 else f"{wg:.2f} ({copies}×)"
                    ax.text(cx, cy, text, fontsize=7, ha="center", va="center", bbox=box)
            ax.set_title(f"map {i}: groups selected for {name}", fontsize=9)
            ax.set_xlabel(f"x [{unit}]")
            ax.set_ylabel(f"y [{unit}]")
        label = "κ (convergence)" if bin_label is None else f"κ (convergence), bin {bin_label}"
        fig.colorbar(im, ax=list(axes[r]), shrink=0.85, label=label)
    handles = [
        Line2D([], [], color=c, lw=2, label=t)
        for c, t in zip(TYPE_COLORS, GROUP_TYPES, strict=True)
    ]
    handles.append(Line2D([], [], color="k", lw=3.6, label="line width ∝ selector weight"))
    fig.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8)
    return _save(fig, path)


def _rule(summary: dict[str, Any], what: str, value: float) -> str:
    """The pixel rule as written in titles: ν (noise units) or κ/σ of the patch."""
    noise = summary.get("type_units") == "noise"
    if what == "void":
        return f"ν≤{value:g}" if noise else f"κ<{value:g}σ"
    return f"ν≥{value:g}" if noise else f"κ>{value:g}σ"


def contribution_bars(path: str | os.PathLike, summary: dict[str, Any]) -> Path:
    """Mean summed selector weight per group type and parameter, with 95% bootstrap CIs.

    Black ticks mark the base rate of each type (the weight a uniform selector would give):
    a bar above its tick means the selector prefers that type beyond its prevalence. With
    ``type_base_rates`` in the summary, open diamonds mark the same weights on random masks of
    each group's size: what the weights would give that type by chance.
    """
    contrib = summary["contributions"]
    names = list(contrib)
    base = summary.get("base_rates", summary["group_type_rates"])
    random = summary.get("type_base_rates", {}).get("weighted", {}).get("random")
    fig = Figure(figsize=(2.6 + 2.0 * len(names), 4.2), layout="constrained")
    ax = fig.subplots()
    width = 0.26
    for i, (tn, color) in enumerate(zip(GROUP_TYPES, TYPE_COLORS, strict=True)):
        x = np.arange(len(names)) + (i - 1) * width
        vals = np.array([contrib[p][tn] for p in names])
        ci = np.array([contrib[p]["ci95"][tn] for p in names])
        err = np.abs(np.stack([vals - ci[:, 0], ci[:, 1] - vals]))
        ax.bar(x, vals, width, color=color, label=tn, yerr=err, capsize=3,
               error_kw={"lw": 1})  # fmt: skip
        ax.hlines([base[tn]] * len(names), x - width / 2, x + width / 2, colors="k", lw=2)
        if random is not None:
            ax.plot(x, [random[p][tn] for p in names], "D", mfc="white", mec="k", ms=5)
    ax.plot([], [], color="k", lw=2, label="base rate (uniform selector)")
    if random is not None:
        ax.plot([], [], "D", mfc="white", mec="k", ms=5, label="random masks, same sizes")
    # the skill of the model explained goes with its attribution (R², mean over seeds)
    r2 = summary.get("skill", {}).get("r2", {})
    labels = [f"{p}\nSOP test R² {r2[p]:.2f}" if r2.get(p) is not None else p for p in names]
    ax.set_xticks(np.arange(len(names)), labels)
    ax.set_xlabel("parameter")
    ax.set_ylabel("mean summed selector weight per map")
    ax.set_ylim(0, 1.05)
    thr = summary["thresholds"]
    boot = summary.get("bootstrap", {})
    over = (f"{boot['n_cosmologies']} cosmologies × {boot['n_seeds']} seed(s)" if boot
            else f"{summary['n_maps']} maps")  # fmt: skip
    ax.set_title(
        f"contributions by group type ({summary['n_maps']} maps; 95% CI over {over};\n"
        f"void {_rule(summary, 'void', thr['void_sigma'])}, "
        f"cluster {_rule(summary, 'cluster', thr['cluster_sigma'])})",
        fontsize=9,
    )
    # below the axes: inside, the legend would hide bars near 1
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="outside lower center", ncols=4)
    return _save(fig, path)


def weight_histograms(
    path: str | os.PathLike,
    weights: NDArray,
    types: NDArray,
    param_names: Sequence[str],
    *,
    bins: int = 20,
) -> Path:
    """Histograms of the non-zero selector weights by group type, one panel per parameter.

    Sparsemax gives most groups exactly 0; the legend counts how many groups of each type
    are active (weight > 0).
    """
    fig = Figure(figsize=(3.8 * len(param_names), 3.4), layout="constrained")
    axes = fig.subplots(1, len(param_names), squeeze=False)[0]
    edges = np.linspace(0, 1, bins + 1)
    for q, name in enumerate(param_names):
        ax = axes[q]
        for i, (tn, color) in enumerate(zip(GROUP_TYPES, TYPE_COLORS, strict=True)):
            wt = weights[..., q][types == i]
            active = wt[wt > 0]
            ax.hist(active, bins=edges, histtype="step", color=color, lw=1.6,
                    label=f"{tn}: {active.size}/{wt.size} active")  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlabel(f"selector weight w for {name} (weight > 0 only)")
        ax.set_ylabel("groups")
        ax.legend(fontsize=8)
    return _save(fig, path)


def sweep_curves(
    path: str | os.PathLike, sweep: Sequence[dict[str, float]], summary: dict[str, Any]
) -> Path:
    """Threshold sweep: void contributions vs τ_void, cluster contributions and purity vs τ_c.

    Dotted black lines are the base rates (share of groups of that type); a contribution above
    its base rate at every threshold is a preference that does not hinge on one τ.
    """
    names = list(summary["contributions"])
    tv0 = summary["class_thresholds"]["tau_void"]
    tc0 = summary["class_thresholds"]["tau_cluster"]
    cs0 = summary["thresholds"]["cluster_sigma"]
    rows = list(sweep)
    sigmas = sorted({r["cluster_sigma"] for r in rows})
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    ax_v, ax_c, ax_p = fig.subplots(1, 3)

    sel = sorted((r for r in rows if r["cluster_sigma"] == cs0 and r["tau_cluster"] == tc0),
                 key=lambda r: r["tau_void"])  # fmt: skip
    x = [r["tau_void"] for r in sel]
    for q, name in enumerate(names):
        ax_v.plot(x, [r[f"{name}_void"] for r in sel], _PARAM_STYLES[q % 4], marker="o",
                  color=TYPE_COLORS[0], label=f"{name}: void contribution")  # fmt: skip
    ax_v.plot(x, [r["rate_void"] for r in sel], ":", color="k", label="void base rate")
    ax_v.axvline(tv0, color="0.6", lw=0.8)
    ax_v.set_xlabel("τ_void (min. fraction of void pixels)")
    ax_v.set_ylabel("mean summed weight / share of groups")
    ax_v.set_title(f"voids (τ_c = {tc0:g}, cluster {_rule(summary, 'cluster', cs0)})",
                   fontsize=9)  # fmt: skip
    ax_v.legend(fontsize=7)

    cmap = ["#fdae61", "#d62728", "#67000d", "#3f007d"]
    for k, cs in enumerate(sigmas):
        sel = sorted((r for r in rows if r["cluster_sigma"] == cs and r["tau_void"] == tv0),
                     key=lambda r: r["tau_cluster"])  # fmt: skip
        x = [r["tau_cluster"] for r in sel]
        color = cmap[k % len(cmap)]
        for q, name in enumerate(names):
            ax_c.plot(x, [r[f"{name}_cluster"] for r in sel], _PARAM_STYLES[q % 4],
                      marker="o", ms=3, color=color,
                      label=f"{name}, {_rule(summary, 'cluster', cs)}")  # fmt: skip
        ax_c.plot(x, [r["rate_cluster"] for r in sel], ":", color=color, lw=1,
                  label=f"base rate, {_rule(summary, 'cluster', cs)}")  # fmt: skip
        ax_p.plot(x, [r["purity"] for r in sel], marker="o", ms=3, color=color,
                  label=f"cluster {_rule(summary, 'cluster', cs)}")  # fmt: skip
    for ax in (ax_c, ax_p):
        ax.set_xscale("log")
        ax.axvline(tc0, color="0.6", lw=0.8)
        ax.set_xlabel("τ_cluster (min. fraction of cluster pixels)")
    ax_c.set_ylabel("mean summed weight / share of groups")
    ax_c.set_title(f"clusters (τ_void = {tv0:g})", fontsize=9)
    ax_c.legend(fontsize=6, ncols=2)
    ax_p.set_ylabel("purity (anchor definition)")
    ax_p.set_ylim(0, 1)
    ax_p.set_title(f"purity (τ_void = {tv0:g})", fontsize=9)
    ax_p.legend(fontsize=7)
    return _save(fig, path)


def write_figures(
    fig_dir: str | os.PathLike,
    *,
    kappa: NDArray,
    masks: NDArray,
    weights: NDArray,
    types: NDArray,
    summary: dict[str, Any],
    sweep: Sequence[dict[str, float]],
    patch: int | None = None,
    pixel_arcmin: float | None = None,
) -> list[Path]:
    """Write the analysis figures into ``fig_dir`` (six, five without region importance in
    ``summary``); returns their paths."""
    d = Path(fig_dir)
    names = list(summary["param_names"])
    importance = []
    if "region_importance" in summary:
        importance.append(region_importance_bars(d / "region_importance.png", summary))
    return [
        groups_gallery(
            d / "groups_gallery.png",
            kappa,
            masks,
            weights,
            types,
            names,
            patch=patch,
            pixel_arcmin=pixel_arcmin,
            bin_label=summary.get("bin"),
        ),
        contribution_bars(d / "contributions.png", summary),
        weight_histograms(d / "weight_hist.png", weights, types, names),
        sweep_curves(d / "threshold_sweep.png", sweep, summary),
        predicted_vs_true(d / "predicted_vs_true.png", summary),
        *importance,
    ]


def controls_figure(result: dict[str, Any], path: str | os.PathLike) -> Path:
    """Figure of contribution(Ωm) − contribution(σ8) per group type, with 95% CIs, for every
    control in ``result`` (``controls.json``) and both the trained and the untrained SOP."""
    style = {"positive": ("C0", "C7"), "swapped": ("C2", "C8"), "negative": ("C3", "C1")}
    kinds = [k for k in style if k in result]
    rows = [
        (f"{k}, {which} SOP", diffs, style[k][j], "os"[j])
        for k in kinds
        for j, (which, diffs) in enumerate(
            (("trained", result[k]["differences"]),
             ("untrained", result[k]["untrained"]["differences"]))
        )
    ]  # fmt: skip
    fig = Figure(figsize=(6.8, 4.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(GROUP_TYPES))
    width = 0.8 / len(rows)
    for j, (label, diffs, color, marker) in enumerate(rows):
        vals = np.array([diffs[t]["value"] for t in GROUP_TYPES])
        ci = np.array([diffs[t]["ci95"] for t in GROUP_TYPES])
        err = np.abs(ci.T - vals)
        ax.errorbar(x + (j - (len(rows) - 1) / 2) * width, vals, yerr=err, fmt=marker,
                    color=color, capsize=3, label=label)  # fmt: skip
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(x, [f"{t} groups" for t in GROUP_TYPES])
    ax.set_xlabel("group type (docs/contracts.md)")
    ax.set_ylabel("contribution(Ωm) − contribution(σ8)\n(share of selector weight, unitless)")
    verdict = ", ".join(f"{k} {'passed' if result[k]['passed'] else 'FAILED'}" for k in kinds)
    ax.set_title(f"Planted controls: {verdict} (95% bootstrap CIs)", fontsize=9)
    ax.text(0.01, 0.02, "planted: positive Ωm on voids (>0), σ8 on clusters (<0); swapped the "
            "reverse", transform=ax.transAxes, fontsize=8, color="0.3")  # fmt: skip
    ax.legend(fontsize=7, loc="best")
    return _save(fig, path, dpi=120)
