"""Post-hoc "-F" baselines of a trained cosmology SOP: MSE, purity, insertion and deletion.

For every analysed map and every parameter p, each post-hoc method of
:mod:`sop_cosmo.attribution.baselines` explains output p of the SOP's frozen backbone (the CNN).
Every method is then turned into a "-F" explanation the same way:

1. the attribution is reduced to one score per patch of the SOP's attention grid, the sum of
   ``|attr|`` over the patch (:func:`~sop_cosmo.attribution.baselines.patch_scores`);
2. the ⌈k·U⌉ best patches are kept, k the SOP's ``keep_fraction`` (one SOP group's size);
3. the backbone sees the input with the other patches at the SOP's baseline value, through the
   very masking SOP uses (``forward_masked``); its output p is the method's "-F" prediction.

The rows compare, for every method and for SOP itself:

* ``mse``: the MSE of the prediction (SOP: its own prediction) against the truth, per parameter
  in physical units (destandardised with the checkpoint's statistics);
* ``purity``: the anchor's purity (:func:`sop_cosmo.cosmo.analysis.purity`) of the kept masks,
  one mask per map and parameter (SOP: its group masks with weight > 0);
* ``insertion_auc`` / ``deletion_auc``: one rule for all methods
  (:func:`sop_cosmo.attribution.insertion_deletion`, ``task="regression"``): patches are
  revealed / removed in score order on the same grid, the backbone predicts, and the curve is
  the squared error of output p to the full-input prediction (standardised units), averaged
  over maps and parameters. Lower insertion and higher deletion are better. SOP's patch scores
  are its group contributions projected onto the grid, ``s_u = Σ_g |w_gp·y_gp|·m_g(u)``; SOP's
  native grouped curves (groups ordered by ``|w_gp·y_gp|``) are reported as extras;
* ``seconds_per_map``: the median wall time of explaining all parameters of one map (SOP: one
  forward pass).

See ``docs/baselines.md``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from sop_cosmo._io import atomic_path
from sop_cosmo.attribution import grouped_insertion_deletion, insertion_deletion
from sop_cosmo.attribution.baselines import (
    METHODS,
    attribute,
    keep_top_patches,
    patch_feature_mask,
    patch_scores,
)

__all__ = [
    "ALL_METHODS",
    "ANCHOR_REFERENCE",
    "MethodResult",
    "backbone_forward",
    "explain_map",
    "fidelity_predictions",
    "parse_methods",
    "run_baselines",
    "sop_patch_scores",
]

log = logging.getLogger(__name__)

#: Every row of the comparison: SOP first, then the post-hoc methods.
ALL_METHODS: tuple[str, ...] = ("sop", *METHODS)
#: The anchor paper's CosmoGrid table, for reference only (other data, other models).
ANCHOR_REFERENCE: dict[str, Any] = {
    "sop": {"mse": 0.025, "purity": 0.647},
    "best_baseline_mse": {"method": "SHAP-F", "mse": 0.028},
    "best_baseline_purity": {"method": "FullGrad-F", "purity": 0.529},
}
_CSV_KEYS = ("purity", "insertion_auc", "deletion_auc", "seconds_per_map")


def parse_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """ "all", a comma-separated string or a sequence → the methods to run (SOP always first).

    Raises
    ------
    ValueError
        On an unknown method, naming the known ones.
    """
    if isinstance(methods, str):
        items = [m.strip() for m in methods.split(",") if m.strip()]
    else:
        items = [str(m) for m in methods]
    if not items or items == ["all"]:
        return ALL_METHODS
    unknown = sorted(set(items) - set(ALL_METHODS))
    if unknown:
        raise ValueError(
            f"methods: unknown {unknown}; pass 'all' or a comma-separated subset of "
            f"{', '.join(ALL_METHODS)}"
        )
    return tuple(m for m in ALL_METHODS if m in items or m == "sop")


def backbone_forward(model: nn.Module) -> tuple[nn.Module, Any]:
    """The SOP's frozen backbone adapter and a plain forward (images → standardised outputs)."""
    bb = model.sop.backbone

    def forward(x: Tensor) -> Tensor:
        return bb.head(bb.encoder(x))

    return bb, forward


def fidelity_predictions(model: nn.Module, x: Tensor, keep: Tensor) -> Tensor:
    """Backbone outputs on inputs that keep only some grid patches (the "-F" prediction).

    Parameters
    ----------
    model : SOPRegressor
        Its frozen backbone masks the input exactly as inside SOP (hidden pixels at the SOP's
        baseline value).
    x : Tensor
        (B, C, H, W) standardised inputs.
    keep : Tensor
        (B, U) bool, the kept patches of each input (row-major over the attention grid).

    Returns
    -------
    Tensor
        (B, P) standardised outputs.
    """
    bb = model.sop.backbone
    with torch.no_grad():
        return bb.forward_masked(x, keep.to(x.dtype))[0]


def sop_patch_scores(masks: Tensor, contributions: Tensor) -> Tensor:
    """SOP's groups projected onto the patch grid: ``s_{u,p} = Σ_g |w_gp·y_gp|·m_g(u)``.

    Parameters
    ----------
    masks : Tensor
        (G, U) group masks of one map over the grid.
    contributions : Tensor
        (G, P) contributions ``w·y``.

    Returns
    -------
    Tensor
        (P, U) float64 patch scores.
    """
    return torch.einsum("gp,gu->pu", contributions.abs().double(), (masks > 0.5).double())


@dataclass
class MethodResult:
    """One method's explanations of the analysed maps (all arrays have N = maps first).

    Attributes
    ----------
    prediction : list of numpy.ndarray
        (P,) standardised prediction per map: the "-F" prediction, or SOP's own.
    masks : list of numpy.ndarray
        Kept masks on the grid per map: (P, gh, gw) for "-F" methods, (G, gh, gw) for SOP.
    selected : list of numpy.ndarray
        (M, P) bool per map: which mask explains which parameter.
    aucs : dict of str to list
        "insertion" / "deletion" → per-map (P,) AUCs of the unified patch rule; SOP also has
        "grouped_insertion" / "grouped_deletion".
    curves : dict of str to list
        "insertion" / "deletion" → per-map (P, S) curves.
    seconds : list of float
        Explanation wall time per map.
    fractions : numpy.ndarray
        (S,) x-axis of the curves: the fraction of patches changed at each step.
    """

    prediction: list[np.ndarray] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)
    selected: list[np.ndarray] = field(default_factory=list)
    aucs: dict[str, list[np.ndarray]] = field(default_factory=dict)
    curves: dict[str, list[np.ndarray]] = field(default_factory=dict)
    seconds: list[float] = field(default_factory=list)
    fractions: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def add_curves(self, name: str, aucs: np.ndarray, curves: np.ndarray | None) -> None:
        self.aucs.setdefault(name, []).append(aucs)
        if curves is not None:
            self.curves.setdefault(name, []).append(curves)


def _last_conv(module: nn.Module) -> nn.Module:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("model: the backbone has no Conv2d layer for LayerGradCam")
    return convs[-1]


def _curves(
    forward: Any,
    x: Tensor,
    scores: Tensor,
    fmask: Tensor,
    baseline: float,
    id_steps: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-patch insertion/deletion of each output p ranked by ``scores[p]``: AUCs (2, P),
    curves (2, P, S) scored on output p, and the (S,) fractions of patches changed."""
    aucs, curves, fractions = [], [], np.zeros(0)
    for p in range(scores.shape[0]):
        res = insertion_deletion(
            forward,
            x,
            scores[p],
            feature_mask=fmask,
            baseline=baseline,
            n_steps=id_steps,
            task="regression",
            batch_size=128,
        )
        names = [f"{mode}/pred_sqerr/{p}" for mode in ("insertion", "deletion")]
        aucs.append([res.aucs[n] for n in names])
        curves.append([res.curves[n].cpu().numpy() for n in names])
        fractions = res.fractions.cpu().numpy()
    return np.asarray(aucs).T, np.asarray(curves).transpose(1, 0, 2), fractions


def explain_map(
    method: str,
    model: nn.Module,
    x: Tensor,
    result: MethodResult,
    *,
    keep_fraction: float,
    n_samples: int = 200,
    ig_steps: int = 50,
    seed: int = 0,
    id_steps: int | None = None,
) -> None:
    """Explain one standardised map (C, H, W) with ``method`` and append to ``result``."""
    bb, forward = backbone_forward(model)
    patch, grid = bb.patch_size, bb.grid
    baseline = float(bb.baseline.reshape(-1)[0]) if bb.baseline.numel() == 1 else None
    if baseline is None:
        raise ValueError("model: the -F baselines need a scalar SOP baseline value")
    fmask = patch_feature_mask(tuple(x.shape[-2:]), patch).to(x.device)
    n_out = int(bb.n_outputs)
    if method == "sop":
        t0 = time.perf_counter()
        with torch.no_grad():
            out = model.explain(x[None])
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        result.seconds.append(time.perf_counter() - t0)
        masks = out.masks[0].reshape(out.masks.shape[1], -1)  # (G, U)
        contrib = out.contributions[0]  # (G, P)
        result.prediction.append(out.prediction[0].float().cpu().numpy())
        result.masks.append((masks > 0.5).reshape(-1, *grid).cpu().numpy())
        result.selected.append((out.weights[0] > 0).cpu().numpy())
        scores = sop_patch_scores(masks, contrib)
        aucs, curves, result.fractions = _curves(forward, x, scores, fmask, baseline, id_steps)
        result.add_curves("insertion", aucs[0], curves[0])
        result.add_curves("deletion", aucs[1], curves[1])
        pix = bb.expand_mask(masks, x[None].expand(len(masks), -1, -1, -1)) > 0.5
        grouped = []
        for p in range(n_out):
            res = grouped_insertion_deletion(
                forward,
                x,
                pix,
                contrib[:, p].abs(),
                baseline=baseline,
                task="regression",
                batch_size=128,
            )
            grouped.append([res.aucs[f"{m}/pred_sqerr/{p}"] for m in ("insertion", "deletion")])
        grouped_arr = np.asarray(grouped).T
        result.add_curves("grouped_insertion", grouped_arr[0], None)
        result.add_curves("grouped_deletion", grouped_arr[1], None)
        return

    layer = _last_conv(bb.encoder)
    t0 = time.perf_counter()
    attrs = [
        attribute(
            method,
            forward,
            x,
            p,
            patch_size=patch,
            layer=layer,
            n_samples=n_samples,
            ig_steps=ig_steps,
            baseline=baseline,
            seed=seed,
        )
        for p in range(n_out)
    ]
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    result.seconds.append(time.perf_counter() - t0)
    scores = torch.stack([patch_scores(a, fmask) for a in attrs])  # (P, U)
    keep = torch.stack([keep_top_patches(s, keep_fraction) for s in scores])  # (P, U)
    pred = fidelity_predictions(model, x[None].expand(n_out, -1, -1, -1), keep)
    result.prediction.append(pred.diagonal().float().cpu().numpy())
    result.masks.append(keep.reshape(n_out, *grid).cpu().numpy())
    result.selected.append(np.eye(n_out, dtype=bool))
    aucs, curves, result.fractions = _curves(forward, x, scores, fmask, baseline, id_steps)
    result.add_curves("insertion", aucs[0], curves[0])
    result.add_curves("deletion", aucs[1], curves[1])


def run_baselines(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    methods: str | Sequence[str] = "all",
    max_maps: int | None = 32,
    keep_fraction: float | None = None,
    n_samples: int = 200,
    ig_steps: int = 50,
    seed: int = 0,
    device: str = "auto",
    void_sigma: float = 0.0,
    cluster_sigma: float = 3.0,
    tau_void: float = 0.6,
    tau_cluster: float = 0.015,
    bin: int = -1,
    id_steps: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Compare SOP with the "-F" post-hoc baselines and write ``out_dir/baselines.{csv,json}``
    and ``out_dir/figures/{mse_vs_purity,insertion_deletion}.png``.

    Parameters
    ----------
    checkpoint : path-like
        ``RUN_SOP/model.pt`` of a ``sop`` run.
    data : path-like
        A patch file, usually ``DIR/test.h5``.
    out_dir : path-like
        Output folder (created).
    methods : str or sequence of str
        "all" or a subset of :data:`ALL_METHODS` (SOP's row is always computed).
    max_maps : int, optional
        At most this many maps, spread evenly over the file (the same rows as ``analyze``).
    keep_fraction : float, optional
        Fraction of grid patches a "-F" mask keeps; default the SOP's ``keep_fraction``.
    n_samples : int
        Samples of KernelShap, Lime and RISE.
    ig_steps : int
        Integration steps of IntegratedGradients.
    seed : int
        Seed of the sampling methods (map row r uses ``seed + r``).
    device : str
        "auto", "cpu" or "cuda[:N]".
    void_sigma, cluster_sigma, tau_void, tau_cluster : float
        Purity thresholds, as in ``analyze``.
    bin : int
        Tomographic bin whose physical κ the purity uses (-1 = the last).
    id_steps : int, optional
        Steps of the insertion/deletion curves; default one step per patch.
    progress : bool
        tqdm bar over maps (the postfix names the method).

    Returns
    -------
    dict
        What ``baselines.json`` holds.

    Raises
    ------
    ValueError
        On a missing or non-SOP checkpoint, a missing or mismatched patch file, an unknown
        method, a bad bin or a bad keep fraction.
    """
    from sop_cosmo.cosmo.analysis import (
        group_statistics,
        load_sop_checkpoint,
        map_indices,
        purity,
        resolve_bin,
        upsample_masks,
    )
    from sop_cosmo.cosmo.data import Normalization, load_split

    checkpoint, data, out = Path(checkpoint), Path(data), Path(out_dir)
    chosen = parse_methods(methods)
    if int(n_samples) < 1 or int(ig_steps) < 1:
        raise ValueError(f"n_samples, ig_steps: expected ≥ 1 each, got {n_samples} and {ig_steps}")
    model, ckpt = load_sop_checkpoint(checkpoint, device, purpose="the -F comparison")
    dev = next(model.parameters()).device
    if not data.is_file():
        raise ValueError(f"data: {data}: no such file; give DIR/test.h5 from `preprocess`")
    norm = Normalization.from_dict(ckpt["norm"])
    split = load_split(data, "sop", norm=norm)
    names = list(norm.param_names)
    options = ckpt["model_args"]["options"]
    k = float(options["keep_fraction"] if keep_fraction is None else keep_fraction)
    if not 0.0 < k <= 1.0:
        raise ValueError(f"keep_fraction: expected a value in (0, 1], got {k}")
    bb, forward = backbone_forward(model)
    patch = int(bb.patch_size)
    idx = map_indices(len(split), max_maps)
    b_index, b_label = resolve_bin(int(bin), split.in_channels, split.attrs, data)
    with h5py.File(data, "r") as f:
        kappa = np.asarray(f["kappa"][idx, b_index], dtype=np.float64)  # physical κ
    x_all = split.x[idx].to(dev)
    truth = split.y_phys[idx].double().numpy()

    import captum.attr  # noqa: F401  (imported before the timings, not inside the first one)

    results = {m: MethodResult() for m in chosen}
    bar = tqdm(idx, disable=not progress, desc="baselines maps", unit="map")
    for i, row in enumerate(bar):
        for method in chosen:
            bar.set_postfix(method=method, refresh=False)
            explain_map(
                method,
                model,
                x_all[i],
                results[method],
                keep_fraction=k,
                n_samples=n_samples,
                ig_steps=ig_steps,
                seed=seed + int(row),
                id_steps=id_steps,
            )
    bar.close()

    with torch.no_grad():
        full = torch.cat([forward(x_all[s : s + 256]) for s in range(0, len(idx), 256)])
    t_mean, t_std = np.asarray(norm.target_mean), np.asarray(norm.target_std)
    backbone_mse = (((full.double().cpu().numpy() * t_std + t_mean) - truth) ** 2).mean(0)

    h, w = kappa.shape[-2:]
    rows: dict[str, dict[str, Any]] = {}
    mean_curves: dict[str, dict[str, list[float]]] = {}
    fractions: list[float] = []
    for method, res in results.items():
        pred = np.stack(res.prediction).astype(np.float64) * t_std + t_mean
        mse = ((pred - truth) ** 2).mean(0)
        grid_masks = np.stack(res.masks)
        stats = group_statistics(
            kappa,
            upsample_masks(grid_masks, (h, w), patch=patch),
            void_sigma=void_sigma,
            cluster_sigma=cluster_sigma,
        )
        selected = np.stack(res.selected)
        thr = {"tau_void": tau_void, "tau_cluster": tau_cluster}
        ins, dele = np.stack(res.aucs["insertion"]), np.stack(res.aucs["deletion"])
        row_: dict[str, Any] = {
            "method": method,
            "mse": {n: float(v) for n, v in zip(names, mse, strict=True)},
            "mse_mean": float(mse.mean()),
            "purity": purity(stats, selected, **thr),
            "insertion_auc": float(ins.mean()),
            "deletion_auc": float(dele.mean()),
            "seconds_per_map": float(np.median(res.seconds)),
            "purity_per_param": {
                n: purity(stats, selected[..., q : q + 1], **thr) for q, n in enumerate(names)
            },
            "insertion_auc_per_param": dict(zip(names, ins.mean(0).tolist(), strict=True)),
            "deletion_auc_per_param": dict(zip(names, dele.mean(0).tolist(), strict=True)),
            "mean_mask_fraction": float((stats["mask_fraction"][selected.any(-1)]).mean()),
        }
        if method == "sop":
            row_["grouped_insertion_auc"] = float(np.mean(res.aucs["grouped_insertion"]))
            row_["grouped_deletion_auc"] = float(np.mean(res.aucs["grouped_deletion"]))
        rows[method] = row_
        curves_ins = np.stack(res.curves["insertion"])  # (N, P, S)
        curves_del = np.stack(res.curves["deletion"])
        mean_curves[method] = {
            "insertion": curves_ins.mean((0, 1)).tolist(),
            "deletion": curves_del.mean((0, 1)).tolist(),
        }
        fractions = res.fractions.tolist()

    n_units = int(np.prod(bb.grid))
    summary: dict[str, Any] = {
        "methods": rows,
        "param_names": names,
        "n_maps": len(idx),
        "map_indices": idx.tolist(),
        "keep_fraction": k,
        "n_patches": n_units,
        "n_keep": int(keep_top_patches(torch.zeros(n_units), k).sum()),
        "attention_patch": patch,
        "baseline": float(bb.baseline.reshape(-1)[0]),
        "thresholds": {
            "void_sigma": float(void_sigma),
            "cluster_sigma": float(cluster_sigma),
            "tau_void": float(tau_void),
            "tau_cluster": float(tau_cluster),
        },
        "bin_index": b_index,
        "bin": b_label,
        "n_samples": int(n_samples),
        "ig_steps": int(ig_steps),
        "id_steps": id_steps,
        "seed": int(seed),
        "backbone_mse": {n: float(v) for n, v in zip(names, backbone_mse, strict=True)},
        "backbone_mse_mean": float(backbone_mse.mean()),
        "curves": {"fractions": fractions, "mean": mean_curves},
        "anchor_reference": ANCHOR_REFERENCE,
        "checkpoint": str(checkpoint),
        "data": str(data),
    }
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "baselines.csv", rows, names)
    with atomic_path(out / "baselines.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    _plot_mse_purity(out / "figures" / "mse_vs_purity.png", rows, names)
    _plot_curves(out / "figures" / "insertion_deletion.png", fractions, mean_curves)
    log.info("baselines %s on %s (%d maps) -> %s", checkpoint, data, len(idx), out)
    return summary


def _write_csv(path: Path, rows: dict[str, dict[str, Any]], names: list[str]) -> None:
    header = [
        "method",
        *(f"mse_{n}" for n in names),
        "mse_mean",
        *_CSV_KEYS,
        *(f"purity_{n}" for n in names),
    ]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for method, r in rows.items():
            writer.writerow(
                [
                    method,
                    *(r["mse"][n] for n in names),
                    r["mse_mean"],
                    *(r[key] for key in _CSV_KEYS),
                    *(r["purity_per_param"][n] for n in names),
                ]
            )


_LABELS = {
    "sop": "SOP",
    "integrated_gradients": "IG-F",
    "kernel_shap": "KernelSHAP-F",
    "lime": "LIME-F",
    "layer_gradcam": "GradCAM-F",
    "rise": "RISE-F",
    "occlusion": "Occlusion-F",
    "random": "Random-F",
}


# One colour and marker per row, so that close points stay apart in the legend; red is SOP's.
_STYLES = {
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


def _plot_mse_purity(path: Path, rows: dict[str, dict[str, Any]], names: list[str]) -> None:
    # The object API (no pyplot): drawing here never switches a notebook's backend.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 5.2), layout="constrained")
    ax = fig.subplots()
    for method, r in rows.items():
        sop = method == "sop"
        color, marker = _STYLES.get(method, ("black", "o"))
        label = "SOP (own prediction, groups)" if sop else _LABELS.get(method, method)
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


def _plot_curves(path: Path, fractions: list[float], curves: dict[str, dict[str, list]]) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2, sharex=True)
    for ax, mode, better in zip(axes, ("insertion", "deletion"), ("lower", "higher"), strict=True):
        for method, c in curves.items():
            sop = method == "sop"
            ax.plot(fractions, c[mode], label=_LABELS.get(method, method),
                    color=_STYLES.get(method, ("black", "o"))[0], linewidth=2.5 if sop else 1.2,
                    zorder=3 if sop else 2)  # fmt: skip
        changed = "revealed" if mode == "insertion" else "removed"
        ax.set_xlabel(f"fraction of grid patches {changed} (in each method's score order)")
        ax.set_ylabel("(f_p(x_step) − f_p(x_full))² [standardised units²]")
        ax.set_title(f"{mode}, mean over maps and parameters (AUC: {better} is better)",
                     fontsize=9)  # fmt: skip
        ax.grid(alpha=0.3)
    fig.legend(*axes[1].get_legend_handles_labels(), fontsize=8, loc="outside right upper")
    _save_figure(fig, path)
