"""Stage ``analyze``: the void/cluster analysis of trained SOP regressors on a patch file.

For every analysed test patch each SOP model (one per training seed) gives G group masks over
its attention grid and, per parameter p, selector weights ``w[g, p] ≥ 0`` that sum to 1 over
the groups. The stage first scores the models' skill (R² and the constant predictor's MSE,
:mod:`sop_cosmo.cosmo.maths.skill`), types each group (:mod:`sop_cosmo.cosmo.maths.group_types`:
in noise units on every bin, or the anchor's per-patch rule), bootstraps the contributions of
each group type over test cosmologies × seeds (:mod:`sop_cosmo.cosmo.maths.bootstrap`), gates
the statements it could make (:mod:`sop_cosmo.cosmo.maths.claims`), sweeps the thresholds,
types random masks of the selected groups' sizes for the type base rates
(:mod:`sop_cosmo.cosmo.maths.base_rates`), measures ΔMSE when the void or cluster pixels are
replaced by the baseline or Gaussianised (:mod:`sop_cosmo.cosmo.maths.occlusion`), and writes
``summary.json`` (docs/contracts.md, "summary.json"), ``groups.csv``, ``groups.h5``,
``threshold_sweep.csv`` and the figures (:mod:`sop_cosmo.cosmo.figures`), through
:mod:`sop_cosmo.cosmo.analysis_files`.

See ``docs/analysis.md`` for the definitions and how to read the outputs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sop_cosmo._progress import progress_write
from sop_cosmo.cosmo.analysis import (
    by_bin,
    explain_maps,
    group_rows,
    region_importance_of,
    type_base_rates,
)
from sop_cosmo.cosmo.analysis_files import (
    read_analysed_patches,
    read_null_summary,
    sigma_noise_of,
    write_csv,
    write_groups_h5,
    write_json,
)
from sop_cosmo.cosmo.config import TYPE_UNITS, AnalyzeConfig, resolve
from sop_cosmo.cosmo.contracts.checkpoint import Checkpoint
from sop_cosmo.cosmo.dataset import Normalization
from sop_cosmo.cosmo.maths.bootstrap import contributions, difference_pair
from sop_cosmo.cosmo.maths.claims import make_claims
from sop_cosmo.cosmo.maths.group_types import (
    STAT_NAMES,
    TYPE_NAMES,
    check_tau,
    classify_groups,
    group_type_rates,
    purity,
    type_weights,
)
from sop_cosmo.cosmo.maths.selection import resolve_bin
from sop_cosmo.cosmo.maths.skill import ensemble_skill, per_cosmology, skill_scores
from sop_cosmo.cosmo.maths.sweep import (
    SWEEP_CLUSTER_SIGMA,
    SWEEP_TAU_CLUSTER,
    SWEEP_TAU_VOID,
    threshold_sweep,
)
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


def _check_config(cfg: AnalyzeConfig) -> None:
    check_tau(cfg.tau_void, cfg.tau_cluster)
    if cfg.type_units not in TYPE_UNITS:
        raise ValueError(f"type_units: expected one of {TYPE_UNITS}, got {cfg.type_units!r}")
    for name in ("n_boot", "batch_size", "min_cosmologies"):
        if int(getattr(cfg, name)) < 1:
            raise ValueError(f"{name}: expected ≥ 1, got {getattr(cfg, name)}")
    for name in ("max_maps", "region_maps"):
        if getattr(cfg, name) is not None and int(getattr(cfg, name)) < 1:
            raise ValueError(f"{name}: expected ≥ 1 or none, got {getattr(cfg, name)}")
    for name in ("nu_void", "nu_cluster", "min_r2"):
        if not np.isfinite(float(getattr(cfg, name))):
            raise ValueError(f"{name}: expected a finite number, got {getattr(cfg, name)}")


def _load_all(paths: Sequence[Path], device: str) -> list[tuple[torch.nn.Module, Checkpoint]]:
    """Every SOP of the ensemble, checked to see the same inputs and targets as the first."""
    if len({str(p.resolve()) for p in paths}) != len(paths):
        raise ValueError(f"ensemble: a checkpoint is given twice in {[str(p) for p in paths]}")
    loaded = [_load_sop(p, device) for p in paths]
    first = Normalization.from_dict(loaded[0][1].norm)
    for (model, ckpt), path in zip(loaded[1:], paths[1:], strict=True):
        norm = Normalization.from_dict(ckpt.norm)
        same = (
            list(norm.param_names) == list(first.param_names)
            and len(norm.input_mean) == len(first.input_mean)
            and int(model.n_groups) == int(loaded[0][0].n_groups)
            and ckpt.options.get("attention_patch") == loaded[0][1].options.get("attention_patch")
        )
        if not same:
            raise ValueError(
                f"ensemble: {path} differs from {paths[0]} in its parameters, bins, groups or "
                "attention grid; an ensemble is one configuration trained with several seeds"
            )
    return loaded


def analyze(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out_dir: str | os.PathLike,
    config: AnalyzeConfig | None = None,
    *,
    ensemble: Sequence[str | os.PathLike] = (),
    progress: bool = True,
    figures: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Run the void/cluster analysis of trained SOP checkpoints on a patch file.

    Parameters
    ----------
    checkpoint : path-like
        ``RUN/model.pt`` of a ``sop`` run (the first training seed; its groups fill
        ``groups.h5`` and the figures).
    data : path-like
        A patch file (docs/contracts.md, "Patch file"), usually ``DIR/test.h5``. The models
        see it standardised with their checkpoint's statistics; the typing uses physical κ.
    out_dir : path-like
        Output folder (created): ``summary.json``, ``groups.csv``, ``groups.h5``,
        ``threshold_sweep.csv`` and ``figures/``.
    config : AnalyzeConfig, optional
        ``type_units`` ("noise": ν = κ/σ_noise on every bin, void pixel ν ≤ −nu_void,
        cluster ν ≥ nu_cluster; "patch": κ/σ of the patch on ``bin``, void κ < void_sigma·σ,
        cluster κ > cluster_sigma·σ), the group thresholds tau_void and tau_cluster, ``bin``
        (Python index, -1 = the last bin: the per-patch rule's bin and the figures' κ),
        ``max_maps`` (spread evenly over the file), ``region_maps`` (how many of those get their
        regions replaced for ``region_importance``), ``n_boot`` and ``seed`` of the bootstrap
        over test cosmologies × seeds, the claim gates ``min_r2`` and ``min_cosmologies``,
        ``device`` and ``batch_size``. Default :class:`AnalyzeConfig`.
    ensemble : sequence of path-like
        SOP checkpoints of further training seeds of the same configuration, analysed with
        ``checkpoint`` as one ensemble.
    progress : bool
        tqdm bar over maps, per seed, and a line per phase (explained maps, each region
        replacement) with its time.
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
        On a missing or non-SOP checkpoint, an ensemble of different configurations, a missing
        or mismatched patch file (or one without ``sigma_noise`` in noise units), a bad bin
        index or bad thresholds.
    """
    cfg = resolve(AnalyzeConfig, config, overrides)
    _check_config(cfg)
    null = read_null_summary(cfg.null_summary)  # before any model is loaded: a typo fails at once
    noise = cfg.type_units == "noise"
    paths = [Path(checkpoint), *(Path(p) for p in ensemble)]
    data, out = Path(data), Path(out_dir)
    loaded = _load_all(paths, cfg.device)
    norm = Normalization.from_dict(loaded[0][1].norm)
    names = list(norm.param_names)
    difference_pair(names)  # fails early, naming the parameters, when undefined
    patches, idx = read_analysed_patches(data, norm, cfg.max_maps)
    params, cosmo_id, attrs = patches.params, patches.cosmo_id, patches.attrs
    n, c = patches.kappa.shape[:2]
    b_index, b_label = resolve_bin(cfg.bin, c, attrs, data)
    labels = [int(v) for v in np.atleast_1d(attrs.get("bins", list(range(1, c + 1))))]
    sigma = sigma_noise_of(attrs, data, c) if noise else None
    # The options the model was built with: the cell size of its attention grid.
    patch = loaded[0][1].options.get("attention_patch")
    patch = int(patch) if patch is not None else None
    # The pixel rule in units of its σ: κ/σ below void_t is void, above cluster_t cluster.
    void_t, cluster_t = (0.0 - cfg.nu_void, cfg.nu_cluster)  # 0.0 - 0.0 is +0.0, not -0.0
    if not noise:
        void_t, cluster_t = cfg.void_sigma, cfg.cluster_sigma
    sweep_sigmas = sorted({float(s) for s in SWEEP_CLUSTER_SIGMA} | {float(cluster_t)})
    runs = []
    t0 = time.perf_counter()
    for i, ((model, ckpt), path) in enumerate(zip(loaded, paths, strict=True)):
        run = explain_maps(model, Normalization.from_dict(ckpt.norm), patches, cfg, b_index=b_index,
                       sigma_noise=sigma, patch=patch, sweep_sigmas=sweep_sigmas,
                       desc=f"analyze seed {i + 1}/{len(paths)}", progress=progress)  # fmt: skip
        if not (np.isfinite(run["weights"]).all() and np.isfinite(run["outputs"]).all()):
            raise ValueError(
                f"checkpoint: {path}: the SOP gives non-finite weights or group outputs on "
                f"{data}; the model has diverged: retrain it (e.g. with a lower learning rate)"
            )
        run["types"] = classify_groups(run["stats"], tau_void=cfg.tau_void,
                                       tau_cluster=cfg.tau_cluster)  # fmt: skip
        run["seed"] = int(ckpt.config.get("seed", i))
        run["skill"] = skill_scores(run["preds"], params, run["train_mean"], names)
        runs.append(run)
    if progress:  # a line per phase: the bars of one seed can be too short to show
        progress_write(f"analyze: groups of {n} maps × {len(runs)} seed(s) explained "
                       f"({time.perf_counter() - t0:.0f} s)")  # fmt: skip

    weights = np.stack([r["weights"] for r in runs])  # (S, N, G, P)
    types = np.stack([r["types"] for r in runs])
    contrib = contributions(weights, types, names, cosmo_id=cosmo_id, n_boot=cfg.n_boot,
                            seed=cfg.seed)  # fmt: skip
    skill = ensemble_skill([r["skill"] for r in runs], cfg.min_r2)
    gate = make_claims(contrib, skill, min_cosmologies=cfg.min_cosmologies, null=null)
    # Pooled over seeds (seed after seed along the map axis) for rates, purity and the sweep.
    stats = {k: np.concatenate([r["stats"][k] for r in runs]) for k in STAT_NAMES}
    w_all, t_all = weights.reshape(-1, *weights.shape[2:]), types.reshape(-1, types.shape[-1])
    selected = w_all > 0
    masks = runs[0]["masks"]
    distinct = float(np.mean([len(np.unique(m.reshape(m.shape[0], -1), axis=0))
                              for r in runs for m in r["masks"]]))  # fmt: skip
    summary: dict[str, Any] = {
        "thresholds": {"void_sigma": float(void_t), "cluster_sigma": float(cluster_t)},
        "contributions": contrib["contributions"],
        "differences": contrib["differences"],
        "group_type_rates": group_type_rates(t_all),
        "purity": purity(stats, selected, tau_void=cfg.tau_void, tau_cluster=cfg.tau_cluster),
        "n_maps": int(n),
        # extras (additional top-level keys only)
        "skill": skill,
        "claims": gate["claims"],
        "no_claim": gate["no_claim"],
        "claim_checks": gate["claim_checks"],
        "null_gate": None if null is None else {
            "summary": str(cfg.null_summary), "permute_labels": null.get("permute_labels"),
            "n_claims": len(null["claims"]), "no_claim": null.get("no_claim"),
        },
        "type_units": cfg.type_units,
        "sigma_noise": None if sigma is None else [float(v) for v in sigma],
        "typed_bins": labels if noise else [b_label],
        "class_thresholds": {"tau_void": float(cfg.tau_void),
                             "tau_cluster": float(cfg.tau_cluster)},
        "base_rates": contrib["base_rates"],
        "preference": contrib["preference"],
        "difference_params": contrib["difference_params"],
        "bootstrap": {"unit": contrib["bootstrap_unit"], "n_cosmologies": contrib["n_units"],
                      "n_seeds": contrib["n_seeds"], "resample_seeds": contrib["n_seeds"] > 1},
        "seeds": [r["seed"] for r in runs],
        "per_seed": [
            {"seed": r["seed"], "checkpoint": str(p), "skill": r["skill"],
             **contrib["per_seed"][i],
             "purity": purity(r["stats"], r["weights"] > 0, tau_void=cfg.tau_void,
                              tau_cluster=cfg.tau_cluster)}
            for i, (r, p) in enumerate(zip(runs, paths, strict=True))
        ],
        "per_cosmology": per_cosmology(np.stack([r["preds"] for r in runs]), params, cosmo_id,
                                       names),
        "active_group_type_rates": {
            name: {tn: float((t_all[selected[..., q]] == i).mean())
                   for i, tn in enumerate(TYPE_NAMES)}
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
        "train_mean": {n: float(v) for n, v in zip(names, runs[0]["train_mean"], strict=True)},
        "data_source": attrs.get("source"),
        "permute_labels": bool(attrs.get("permute_labels", False)),  # the null's patches
        "mse": skill["mse"],
        "mse_mean": float(np.mean(list(skill["mse"].values()))),
        "n_boot": int(cfg.n_boot),
        "seed": int(cfg.seed),
        "max_maps": cfg.max_maps,
        "checkpoint": str(paths[0]),
        "checkpoints": [str(p) for p in paths],
        "data": str(data),
    }  # fmt: skip
    summary["type_base_rates"] = type_base_rates(
        runs, patches, cfg, sigma_noise=sigma, b_index=b_index, patch=patch, names=names
    )
    importance = region_importance_of(loaded, patches, cfg, sigma_noise=sigma, b_index=b_index,
                                      runs=runs, progress=progress)  # fmt: skip
    summary["region_importance_maps"] = importance["n_maps"]
    summary["region_importance"] = importance["baseline"]
    summary["region_importance_gaussianised"] = importance["gaussianised"]
    if noise:
        summary["by_bin"] = by_bin(runs, labels, names, cosmo_id, cfg)

    out.mkdir(parents=True, exist_ok=True)
    # An old summary next to new tables would claim a finished run: drop it first.
    (out / "summary.json").unlink(missing_ok=True)
    sweep_cf = {cs: np.concatenate([r["sweep_cf"][cs] for r in runs]) for cs in sweep_sigmas}
    sweep = threshold_sweep(
        stats, sweep_cf, w_all, names,
        tau_void=sorted(set(SWEEP_TAU_VOID) | {float(cfg.tau_void)}),
        tau_cluster=sorted(set(SWEEP_TAU_CLUSTER) | {float(cfg.tau_cluster)}),
    )  # fmt: skip
    write_csv(out / "threshold_sweep.csv", sweep)
    write_csv(out / "groups.csv", group_rows(runs, names, idx, cosmo_id))
    first = runs[0]
    kappa_bin = patches.kappa[:, b_index].astype(np.float64)
    arrays = {
        "kappa": kappa_bin.astype(np.float32),
        "masks": masks,
        "weights": first["weights"].astype(np.float32),
        "group_outputs": first["outputs"].astype(np.float32),
        "prediction": first["preds"].astype(np.float32),
        "params": params,
        "types": first["types"],
        "file_index": idx,
        "cosmo_id": cosmo_id,
        **{k: first["stats"][k] for k in STAT_NAMES},
        # every seed: what the ensemble statistics are computed from
        "seed_type_weights": np.stack(
            [type_weights(r["weights"], r["types"]) for r in runs]
        ).astype(np.float32),
        "seed_prediction": np.stack([r["preds"] for r in runs]).astype(np.float32),
    }
    if noise:
        arrays["types_by_bin"] = classify_groups(first["per_bin"], tau_void=cfg.tau_void,
                                                 tau_cluster=cfg.tau_cluster)  # fmt: skip
    h5_attrs = {
        "param_names": names,
        "type_names": list(TYPE_NAMES),
        "attention_patch": -1 if patch is None else patch,
        "thresholds": json.dumps({**summary["thresholds"], **summary["class_thresholds"]}),
        "type_units": cfg.type_units,
        "sigma_noise": [] if sigma is None else sigma,
        "bin": b_label,
        "bin_index": b_index,
        "group_outputs_units": "physical",
        "seeds": summary["seeds"],
        "checkpoint": str(paths[0]),
        "checkpoints": json.dumps(summary["checkpoints"]),
        "data": str(data),
    }
    write_groups_h5(out / "groups.h5", arrays, h5_attrs)
    if figures:
        from sop_cosmo.cosmo.figures import write_figures  # matplotlib only when drawing

        write_figures(
            out / "figures", kappa=kappa_bin, masks=masks, weights=first["weights"],
            types=first["types"], summary=summary, sweep=sweep, patch=patch,
            pixel_arcmin=attrs.get("pixel_arcmin"),
        )  # fmt: skip
    write_json(out / "summary.json", summary)  # last: its presence means the run finished
    log.info("analyze %s on %s: %d maps, %d seed(s) -> %s", paths[0], data, n, len(runs), out)
    return summary
