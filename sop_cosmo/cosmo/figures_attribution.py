"""Figures of the ``baselines`` stage: accuracy against purity, and the insertion/deletion curves.

Drawn with matplotlib's object API (no pyplot), so drawing never switches a notebook's backend;
written atomically. The analysis figures are :mod:`sop_cosmo.cosmo.figures`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sop_cosmo._io import atomic_path

__all__ = ["LABELS", "STYLES", "plot_curves", "plot_mse_purity"]

#: Legend label of each row ("-F": the backbone on the method's kept patches).
LABELS = {
    "sop": "SOP",
    "integrated_gradients": "IG-F",
    "kernel_shap": "KernelSHAP-F",
    "lime": "LIME-F",
    "layer_gradcam": "GradCAM-F",
    "rise": "RISE-F",
    "occlusion": "Occlusion-F",
    "random": "Random-F",
}


#: One colour and marker per row, so that close points stay apart in the legend; red is SOP's.
STYLES = {
    "sop": ("tab:red", "*"),
    "integrated_gradients": ("tab:blue", "o"),
    "kernel_shap": ("tab:orange", "s"),
    "lime": ("tab:green", "D"),
    "layer_gradcam": ("tab:purple", "^"),
    "rise": ("tab:brown", "v"),
    "occlusion": ("tab:pink", "P"),
    "random": ("tab:gray", "X"),
}


def _save_figure(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")


def plot_mse_purity(path: Path, rows: dict[str, dict[str, Any]], names: list[str]) -> None:
    """Mean MSE against purity, one point per row of ``baselines.json`` (SOP: a red star)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.subplots()
    for method, r in rows.items():
        sop = method == "sop"
        color, marker = STYLES.get(method, ("black", "o"))
        label = "SOP (own prediction, groups)" if sop else LABELS.get(method, method)
        ax.scatter(r["mse_mean"], r["purity"], s=180 if sop else 55, marker=marker,
                   color=color, zorder=3 if sop else 2, edgecolor="black", linewidth=0.5,
                   label=label)  # fmt: skip
    mses = [r["mse_mean"] for r in rows.values()]
    if min(mses) > 0 and max(mses) / min(mses) > 10:  # log only when it spans a decade
        ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)  # purity is a fraction: a fixed axis compares runs at a glance
    ax.set_xlabel(f"MSE, mean over {', '.join(names)} (physical units of the parameters)")
    ax.set_ylabel("purity (fraction; higher = purer void/cluster masks)")
    ax.set_title("Accuracy vs purity; -F: the backbone on each method's top-k patches",
                 fontsize=9)  # fmt: skip
    ax.grid(alpha=0.3)
    fig.legend(fontsize=8, loc="outside lower center", ncols=4)
    _save_figure(fig, path)


def plot_curves(path: Path, fractions: list[float], curves: dict[str, dict[str, list]]) -> None:
    """The mean insertion and deletion curves of every method, side by side."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for ax, mode, better in zip(axes, ("insertion", "deletion"), ("lower", "higher"), strict=True):
        for method, c in curves.items():
            sop = method == "sop"
            ax.plot(fractions, c[mode], label=LABELS.get(method, method),
                    color=STYLES.get(method, ("black", "o"))[0], linewidth=2.5 if sop else 1.2,
                    zorder=3 if sop else 2)  # fmt: skip
        changed = "revealed" if mode == "insertion" else "removed"
        ax.set_xlabel(f"fraction of grid patches {changed} (in each method's score order)")
        ax.set_ylabel("(f_p(x_step) − f_p(x_full))² [standardised units²]")
        ax.set_title(f"{mode}, mean over maps and parameters (AUC: {better} is better)",
                     fontsize=9)  # fmt: skip
        ax.grid(alpha=0.3)
    fig.legend(*axes[1].get_legend_handles_labels(), fontsize=8, loc="outside right upper")
    _save_figure(fig, path)
