"""Stage ``baselines``: SOP against post-hoc "-F" baselines — MSE, purity, insertion, deletion.

Every analysed map is explained by SOP and by each chosen method of
:data:`sop_cosmo.attribution.baselines.METHODS` on the SOP's frozen backbone, turned into a
"-F" explanation (:func:`sop_cosmo.cosmo.explain.explain_map`: the ⌈k·U⌉ best patches kept,
the backbone's prediction on them). Every row (SOP first) gets the MSE of its prediction per
parameter (physical units), the anchor's purity of its kept masks (SOP: its groups with weight
> 0), the insertion/deletion AUCs of one patch rule for all (SOP's native grouped curves are
extras) and the median seconds per map. Writes ``baselines.csv``, ``baselines.json`` and
``figures/`` (:mod:`sop_cosmo.cosmo.figures_attribution`). See ``docs/baselines.md``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sop_cosmo._io import atomic_path
from sop_cosmo._progress import progress_bar
from sop_cosmo.attribution import keep_top_patches
from sop_cosmo.attribution.baselines import METHODS
from sop_cosmo.cosmo.config import BaselinesConfig, resolve
from sop_cosmo.cosmo.contracts.patchfile import read_patches
from sop_cosmo.cosmo.dataset import Normalization, load_split
from sop_cosmo.cosmo.explain import DIRECTIONS, MethodResult, backbone_forward, explain_map
from sop_cosmo.cosmo.figures_attribution import plot_curves, plot_mse_purity
from sop_cosmo.cosmo.maths.group_types import group_statistics, purity, upsample_masks
from sop_cosmo.cosmo.maths.selection import map_indices, resolve_bin
from sop_cosmo.cosmo.models import load_model

__all__ = ["ALL_METHODS", "ANCHOR_REFERENCE", "parse_methods", "run_baselines"]

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


def run_baselines(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: BaselinesConfig | None = None,
    *,
    progress: bool = True,
    **overrides: Any,
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
    config : BaselinesConfig, optional
        The settings (methods, maps, samples, thresholds...); default ``BaselinesConfig()``.
        Map row r is explained with seed ``seed + r``.
    progress : bool
        tqdm bar over maps (the postfix names the method).
    **overrides
        Fields of :class:`BaselinesConfig`, applied on top of ``config``.

    Returns
    -------
    dict
        What ``baselines.json`` holds.

    Raises
    ------
    ValueError
        On a missing or non-SOP checkpoint, a missing or mismatched patch file, an unknown
        method or setting, a bad bin or a bad keep fraction.
    """
    cfg = resolve(BaselinesConfig, config, overrides)
    checkpoint, data, out = Path(checkpoint), Path(data), Path(out_dir)
    chosen = parse_methods(cfg.methods)
    if int(cfg.n_samples) < 1 or int(cfg.ig_steps) < 1:
        raise ValueError(
            f"n_samples, ig_steps: expected ≥ 1 each, got {cfg.n_samples} and {cfg.ig_steps}"
        )
    try:
        model, ckpt = load_model(checkpoint, cfg.device, expect_kind="sop", purpose="the baselines")
    except (FileNotFoundError, RuntimeError) as err:  # a missing file, an unavailable device
        raise ValueError(str(err)) from err
    dev = next(model.parameters()).device
    if not data.is_file():
        raise ValueError(f"data: {data}: no such file; give DIR/test.h5 from `preprocess`")
    norm = Normalization.from_dict(ckpt.norm)
    split = load_split(data, "sop", norm=norm)
    names = list(norm.param_names)
    k = float(ckpt.options["keep_fraction"] if cfg.keep_fraction is None else cfg.keep_fraction)
    if not 0.0 < k <= 1.0:
        raise ValueError(f"keep_fraction: expected a value in (0, 1], got {k}")
    bb, forward = backbone_forward(model)
    idx = map_indices(len(split), cfg.max_maps)
    b_index, b_label = resolve_bin(int(cfg.bin), split.in_channels, split.attrs, data)
    kappa = read_patches(data, idx).kappa[:, b_index].astype(np.float64)  # physical κ
    x_all = split.x[idx].to(dev)
    truth = split.y_phys[idx].double().numpy()

    import captum.attr  # noqa: F401  (imported before the timings, not inside the first one)

    results = {m: MethodResult() for m in chosen}
    bar = progress_bar(idx, disable=not progress, desc="baselines maps", unit="map")
    for i, row in enumerate(bar):
        for method in chosen:
            bar.set_postfix(method=method, refresh=False)
            explain_map(
                method,
                model,
                x_all[i],
                results[method],
                keep_fraction=k,
                n_samples=cfg.n_samples,
                ig_steps=cfg.ig_steps,
                seed=cfg.seed + int(row),
                id_steps=cfg.id_steps,
            )
    bar.close()

    with torch.no_grad():
        full = torch.cat([forward(x_all[s : s + 256]) for s in range(0, len(idx), 256)])
    t_mean, t_std = np.asarray(norm.target_mean), np.asarray(norm.target_std)
    backbone_mse = (((full.double().cpu().numpy() * t_std + t_mean) - truth) ** 2).mean(0)

    rows: dict[str, dict[str, Any]] = {}
    mean_curves: dict[str, dict[str, list[float]]] = {}
    fractions: list[float] = []
    for method, res in results.items():
        pred = np.stack(res.prediction).astype(np.float64) * t_std + t_mean
        mse = ((pred - truth) ** 2).mean(0)
        rows[method] = _row(method, res, mse, kappa, int(bb.patch_size), names, cfg)
        mean_curves[method] = {
            mode: np.stack(res.curves[mode]).mean((0, 1)).tolist()  # (N, P, S) → (S,)
            for mode in DIRECTIONS
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
        "attention_patch": int(bb.patch_size),
        "baseline": float(bb.baseline.reshape(-1)[0]),
        "thresholds": {
            key: float(getattr(cfg, key))
            for key in ("void_sigma", "cluster_sigma", "tau_void", "tau_cluster")
        },
        "bin_index": b_index,
        "bin": b_label,
        "n_samples": int(cfg.n_samples),
        "ig_steps": int(cfg.ig_steps),
        "id_steps": cfg.id_steps,
        "seed": int(cfg.seed),
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
    plot_mse_purity(out / "figures" / "mse_vs_purity.png", rows, names)
    plot_curves(out / "figures" / "insertion_deletion.png", fractions, mean_curves)
    log.info("baselines %s on %s (%d maps) -> %s", checkpoint, data, len(idx), out)
    return summary


def _row(
    method: str,
    res: MethodResult,
    mse: np.ndarray,
    kappa: np.ndarray,
    patch: int,
    names: list[str],
    cfg: BaselinesConfig,
) -> dict[str, Any]:
    """One row of ``baselines.json``: MSE, purity and AUCs of one method's explanations."""
    stats = group_statistics(
        kappa,
        upsample_masks(np.stack(res.masks), kappa.shape[-2:], patch=patch),
        void_sigma=cfg.void_sigma,
        cluster_sigma=cfg.cluster_sigma,
    )
    selected = np.stack(res.selected)
    thr = {"tau_void": cfg.tau_void, "tau_cluster": cfg.tau_cluster}
    ins, dele = np.stack(res.aucs["insertion"]), np.stack(res.aucs["deletion"])
    row: dict[str, Any] = {
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
        row["grouped_insertion_auc"] = float(np.mean(res.aucs["grouped_insertion"]))
        row["grouped_deletion_auc"] = float(np.mean(res.aucs["grouped_deletion"]))
    return row


def _write_csv(path: Path, rows: dict[str, dict[str, Any]], names: list[str]) -> None:
    purity_cols = [f"purity_{n}" for n in names]
    header = ["method", *(f"mse_{n}" for n in names), "mse_mean", *_CSV_KEYS, *purity_cols]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for method, r in rows.items():
            mse = [r["mse"][n] for n in names]
            purities = [r["purity_per_param"][n] for n in names]
            writer.writerow([method, *mse, r["mse_mean"], *(r[k] for k in _CSV_KEYS), *purities])
