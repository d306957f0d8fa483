"""Stage ``analyze``: the void/cluster analysis of a trained SOP regressor on a patch file.

For every analysed test patch the SOP model gives G group masks over its attention grid and,
per parameter p, selector weights ``w[g, p] ≥ 0`` that sum to 1 over the groups. The stage
measures and types each group (:mod:`sop_cosmo.cosmo.maths.group_types`), bootstraps the
contributions of each group type over maps (:mod:`sop_cosmo.cosmo.maths.bootstrap`), sweeps the
thresholds, and writes ``summary.json`` (docs/contracts.md, "summary.json"), ``groups.csv``,
``groups.h5``, ``threshold_sweep.csv`` and the figures (:mod:`sop_cosmo.cosmo.figures`).

See ``docs/analysis.md`` for the definitions and how to read the outputs.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from numpy.typing import NDArray
from tqdm.auto import tqdm

from sop_cosmo._io import atomic_path
from sop_cosmo.cosmo.config import AnalyzeConfig, resolve
from sop_cosmo.cosmo.contracts.checkpoint import Checkpoint
from sop_cosmo.cosmo.contracts.patchfile import (
    PatchArrays,
    open_patch_file,
    param_names,
    read_patches,
)
from sop_cosmo.cosmo.dataset import Normalization
from sop_cosmo.cosmo.maths.bootstrap import contributions, difference_pair
from sop_cosmo.cosmo.maths.group_types import (
    STAT_NAMES,
    SWEEP_CLUSTER_SIGMA,
    SWEEP_TAU_CLUSTER,
    SWEEP_TAU_VOID,
    TYPE_NAMES,
    check_tau,
    classify_groups,
    cluster_fraction,
    group_statistics,
    group_type_rates,
    purity,
    threshold_sweep,
    upsample_masks,
)
from sop_cosmo.cosmo.maths.selection import map_indices, resolve_bin
from sop_cosmo.cosmo.models import load_model

__all__ = ["analyze"]

log = logging.getLogger(__name__)


def _load_sop(
    checkpoint: str | os.PathLike, device: str = "auto", *, purpose: str = "the analysis"
) -> tuple[torch.nn.Module, Checkpoint]:
    """Load a ``sop`` checkpoint, turning every failure into a ValueError that says what to do.

    As :func:`sop_cosmo.cosmo.models.load_model` with ``expect_kind="sop"``; ``purpose`` says
    who needs SOP groups, for the message when the checkpoint holds another model.

    Raises
    ------
    ValueError
        On a missing or foreign file, an unavailable device, or a non-SOP model.
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ValueError(f"checkpoint: {checkpoint}: no such file; give RUN/model.pt of a sop run")
    try:
        return load_model(checkpoint, device, expect_kind="sop", purpose=purpose)
    except RuntimeError as err:
        if "device" in str(err):  # e.g. --device cuda without a GPU: the message says so
            raise ValueError(str(err)) from err
        raise ValueError(f"checkpoint: {checkpoint}: cannot load ({err})") from err


def _read_patches(
    data: Path, norm: Normalization, max_maps: int | None
) -> tuple[PatchArrays, NDArray[np.int64]]:
    """The analysed rows of ``data`` (checked against the checkpoint) and their indices."""
    if not data.is_file():
        raise ValueError(f"data: {data}: no such patch file; give DIR/test.h5")
    with open_patch_file(data) as f:  # validates the patch-file schema
        names = param_names(f)
        n_total, c = f["kappa"].shape[:2]
    if names != list(norm.param_names):
        raise ValueError(
            f"data: {data} has parameters {names}, the checkpoint was trained on "
            f"{list(norm.param_names)}"
        )
    if c != len(norm.input_mean):
        raise ValueError(
            f"data: {data} has {c} tomographic bins, the checkpoint was trained on "
            f"{len(norm.input_mean)}"
        )
    idx = map_indices(n_total, max_maps)
    patches = read_patches(data, idx)
    if not np.isfinite(patches.kappa).all():
        raise ValueError(f"data: {data}: non-finite values in 'kappa'")
    return patches, idx


def _write_json(path: Path, obj: Any) -> None:
    with atomic_path(path) as tmp:
        # allow_nan=False: NaN would make the file invalid JSON for strict readers
        tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n")


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(rows)


def _group_rows(
    stats: dict[str, NDArray],
    types: NDArray,
    weights: NDArray,
    outputs: NDArray,
    names: Sequence[str],
    idx: NDArray,
    cosmo_id: NDArray,
) -> list[dict[str, Any]]:
    rows = []
    n, g = types.shape
    for i in range(n):
        for j in range(g):
            row: dict[str, Any] = {
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


def _write_groups_h5(path: Path, arrays: dict[str, NDArray], attrs: dict[str, Any]) -> None:
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value, compression="gzip", compression_opts=4)
        for key, value in attrs.items():
            f.attrs[key] = value


def analyze(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: AnalyzeConfig | None = None,
    *,
    progress: bool = True,
    figures: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Run the void/cluster analysis of a trained SOP checkpoint on a patch file.

    Parameters
    ----------
    checkpoint : path-like
        ``RUN/model.pt`` of a ``sop`` run.
    data : path-like
        A patch file (docs/contracts.md, "Patch file"), usually ``DIR/test.h5``. The model sees
        it standardised with the checkpoint's statistics; the κ statistics use its physical κ.
    out_dir : path-like
        Output folder (created): ``summary.json``, ``groups.csv``, ``groups.h5``,
        ``threshold_sweep.csv`` and ``figures/``.
    config : AnalyzeConfig, optional
        Thresholds (pixel: void κ < void_sigma·σ, cluster κ > cluster_sigma·σ; group:
        tau_void, tau_cluster), the analysed ``bin`` (Python index, -1 = the last,
        highest-redshift bin; the model always sees all bins), ``max_maps`` (spread evenly over
        the file), ``n_boot`` and ``seed`` of the bootstrap over maps, ``device`` and
        ``batch_size`` (maps per forward pass). Default :class:`AnalyzeConfig`.
    progress : bool
        tqdm bar over maps.
    figures : bool
        Draw the figures (set False to skip matplotlib, e.g. in quick tests).
    **overrides
        Fields of :class:`AnalyzeConfig` to replace, e.g. ``n_boot=200``.

    Returns
    -------
    dict
        The summary written to ``summary.json``.

    Raises
    ------
    ValueError
        On a missing or non-SOP checkpoint, a missing or mismatched patch file, a bad bin
        index or bad thresholds.
    """
    cfg = resolve(AnalyzeConfig, config, overrides)
    void_sigma, cluster_sigma = cfg.void_sigma, cfg.cluster_sigma
    tau_void, tau_cluster = cfg.tau_void, cfg.tau_cluster
    n_boot, seed, batch_size, max_maps = cfg.n_boot, cfg.seed, cfg.batch_size, cfg.max_maps
    check_tau(tau_void, tau_cluster)
    if int(n_boot) < 1:
        raise ValueError(f"n_boot: expected ≥ 1, got {n_boot}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected ≥ 1, got {batch_size}")
    checkpoint, data, out = Path(checkpoint), Path(data), Path(out_dir)
    model, ckpt = _load_sop(checkpoint, cfg.device)
    dev = next(model.parameters()).device
    norm = Normalization.from_dict(ckpt.norm)
    names = list(norm.param_names)
    difference_pair(names)  # fails early, naming the parameters, when undefined
    patches, idx = _read_patches(data, norm, max_maps)
    kappa, params, cosmo_id, attrs = patches.kappa, patches.params, patches.cosmo_id, patches.attrs
    n, c, h, w = kappa.shape
    b_index, b_label = resolve_bin(cfg.bin, c, attrs, data)
    # The options the model was built with: the cell size of its attention grid.
    patch = ckpt.options.get("attention_patch")
    patch = int(patch) if patch is not None else None
    kappa_bin = kappa[:, b_index].astype(np.float64)

    mean = np.asarray(norm.input_mean, dtype=np.float32)[:, None, None]
    std = np.asarray(norm.input_std, dtype=np.float32)[:, None, None]
    sweep_sigmas = sorted({float(s) for s in SWEEP_CLUSTER_SIGMA} | {float(cluster_sigma)})
    masks_l, weights_l, outputs_l, preds_l = [], [], [], []
    stats_l: list[dict[str, NDArray]] = []
    sweep_l: dict[float, list[NDArray]] = {s: [] for s in sweep_sigmas}
    bar = tqdm(total=n, disable=not progress, desc="analyze maps", unit="map")
    with torch.no_grad():
        for s in range(0, n, batch_size):
            x = torch.from_numpy((kappa[s : s + batch_size] - mean) / std).to(dev)
            res = model.explain(x)
            grid = (res.masks.float().cpu().numpy() > 0.5).astype(np.uint8)
            masks_l.append(grid)
            weights_l.append(res.weights.float().cpu().numpy())
            outputs_l.append(res.group_outputs.float().cpu().numpy())
            preds_l.append(res.prediction.float().cpu().numpy())
            pix = upsample_masks(grid, (h, w), patch=patch)
            kb = kappa_bin[s : s + batch_size]
            stats_l.append(
                group_statistics(kb, pix, void_sigma=void_sigma, cluster_sigma=cluster_sigma)
            )
            for cs in sweep_sigmas:
                sweep_l[cs].append(cluster_fraction(kb, pix, cs))
            bar.update(len(x))
    bar.close()
    masks = np.concatenate(masks_l)
    weights = np.concatenate(weights_l).astype(np.float64)
    t_mean = np.asarray(norm.target_mean)
    t_std = np.asarray(norm.target_std)
    # Weights sum to 1 over groups, so mean + std·Σ w·y = Σ w·(mean + std·y): the physical
    # group outputs keep the prediction a weighted sum.
    outputs = np.concatenate(outputs_l) * t_std + t_mean
    preds = np.concatenate(preds_l) * t_std + t_mean
    stats = {k: np.concatenate([d[k] for d in stats_l]) for k in STAT_NAMES}
    if not (np.isfinite(weights).all() and np.isfinite(outputs).all()):
        raise ValueError(
            f"checkpoint: {checkpoint}: the SOP gives non-finite weights or group outputs on "
            f"{data}; the model has diverged: retrain it (e.g. with a lower learning rate)"
        )
    types = classify_groups(stats, tau_void=tau_void, tau_cluster=tau_cluster)
    selected = weights > 0

    contrib = contributions(weights, types, names, n_boot=n_boot, seed=seed)
    mse = ((preds - params.astype(np.float64)) ** 2).mean(0)
    distinct = float(np.mean([len(np.unique(m.reshape(m.shape[0], -1), axis=0)) for m in masks]))
    summary: dict[str, Any] = {
        "thresholds": {"void_sigma": float(void_sigma), "cluster_sigma": float(cluster_sigma)},
        "contributions": contrib["contributions"],
        "differences": contrib["differences"],
        "group_type_rates": group_type_rates(types),
        "purity": purity(stats, selected, tau_void=tau_void, tau_cluster=tau_cluster),
        "n_maps": int(n),
        # extras (additional top-level keys only)
        "class_thresholds": {"tau_void": float(tau_void), "tau_cluster": float(tau_cluster)},
        "base_rates": contrib["base_rates"],
        "preference": contrib["preference"],
        "difference_params": contrib["difference_params"],
        "active_group_type_rates": {
            name: {
                tn: float((types[selected[..., q]] == i).mean()) for i, tn in enumerate(TYPE_NAMES)
            }
            for q, name in enumerate(names)
        },
        "mean_active_groups": {
            name: float(selected[..., q].sum(1).mean()) for q, name in enumerate(names)
        },
        "mean_distinct_masks": distinct,
        "n_groups": int(masks.shape[1]),
        "attention_patch": patch,
        "bin": b_label,
        "bin_index": b_index,
        "param_names": names,
        "mse": {name: float(v) for name, v in zip(names, mse, strict=True)},
        "mse_mean": float(mse.mean()),
        "n_boot": int(n_boot),
        "seed": int(seed),
        "max_maps": max_maps,
        "checkpoint": str(checkpoint),
        "data": str(data),
    }

    out.mkdir(parents=True, exist_ok=True)
    # An old summary next to new tables would claim a finished run: drop it first.
    (out / "summary.json").unlink(missing_ok=True)
    sweep_cf = {cs: np.concatenate(v) for cs, v in sweep_l.items()}
    sweep = threshold_sweep(
        stats,
        sweep_cf,
        weights,
        names,
        tau_void=sorted(set(SWEEP_TAU_VOID) | {float(tau_void)}),
        tau_cluster=sorted(set(SWEEP_TAU_CLUSTER) | {float(tau_cluster)}),
    )
    _write_csv(out / "threshold_sweep.csv", sweep)
    _write_csv(
        out / "groups.csv", _group_rows(stats, types, weights, outputs, names, idx, cosmo_id)
    )
    arrays = {
        "kappa": kappa_bin.astype(np.float32),
        "masks": masks,
        "weights": weights.astype(np.float32),
        "group_outputs": outputs.astype(np.float32),
        "prediction": preds.astype(np.float32),
        "params": params,
        "types": types,
        "file_index": idx,
        "cosmo_id": cosmo_id,
        **{k: stats[k] for k in STAT_NAMES},
    }
    h5_attrs = {
        "param_names": names,
        "type_names": list(TYPE_NAMES),
        "attention_patch": -1 if patch is None else patch,
        "thresholds": json.dumps(
            {
                "void_sigma": float(void_sigma),
                "cluster_sigma": float(cluster_sigma),
                "tau_void": float(tau_void),
                "tau_cluster": float(tau_cluster),
            }
        ),
        "bin": b_label,
        "bin_index": b_index,
        "group_outputs_units": "physical",
        "checkpoint": str(checkpoint),
        "data": str(data),
    }
    _write_groups_h5(out / "groups.h5", arrays, h5_attrs)
    if figures:
        from sop_cosmo.cosmo.figures import write_figures  # matplotlib only when drawing

        write_figures(
            out / "figures",
            kappa=kappa_bin,
            masks=masks,
            weights=weights,
            types=types,
            summary=summary,
            sweep=sweep,
            patch=patch,
            pixel_arcmin=attrs.get("pixel_arcmin"),
        )
    _write_json(out / "summary.json", summary)  # last: its presence means the run finished
    log.info("analyze %s on %s: %d maps -> %s", checkpoint, data, n, out)
    return summary
