"""The evaluation stage: the skill of a checkpoint on a patch file, per parameter: the MSE, R²
and the MSE of the constant training-mean predictor (:mod:`sop_cosmo.cosmo.maths.skill`).

The metrics JSON is a contract (docs/contracts.md, "CLI"; docs/training.md, "Evaluation JSON").
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import torch

from sop_cosmo._io import atomic_path
from sop_cosmo.cosmo.config import EvaluateConfig, resolve
from sop_cosmo.cosmo.dataset import Normalization, load_split
from sop_cosmo.cosmo.maths.skill import skill_scores
from sop_cosmo.cosmo.models import load_model

__all__ = ["evaluate"]

log = logging.getLogger(__name__)


@torch.no_grad()
def evaluate(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    out_json: str | os.PathLike,
    config: EvaluateConfig | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Score a checkpoint on a patch file and write the metrics JSON.

    Writes ``{"mse": {name: float}, "mse_mean": float, "n": int, "r2": {name: float | None},
    "mse_constant": {name: float}}``: the MSE in the physical units of each parameter, the
    coefficient of determination R² = 1 − MSE / Var(y) on this file (None when its targets
    are constant) and the MSE of always predicting the training mean (the checkpoint's
    normalisation), which a model without skill reaches; for "sop" models also ``"sop":
    {"mean_active_groups", "mean_mask_fraction", "n_groups"}``. Inference runs in fp32 on
    every device.

    Parameters
    ----------
    checkpoint : path-like
        ``RUN/model.pt``.
    data : path-like
        A patch file, standardised with the checkpoint's statistics.
    out_json : path-like
        Output file (written atomically).
    config : EvaluateConfig, optional
        ``device`` and ``batch_size``; keyword ``overrides`` replace its fields.

    Returns
    -------
    dict
        What was written.
    """
    cfg = resolve(EvaluateConfig, config, overrides)
    batch_size = cfg.batch_size
    model, ckpt = load_model(checkpoint, cfg.device)
    dev = next(model.parameters()).device
    norm = Normalization.from_dict(ckpt.norm)
    split = load_split(data, ckpt.kind, norm=norm)
    sop = hasattr(model, "explain")
    preds, active, mask_frac = [], 0.0, 0.0
    for s in range(0, len(split), batch_size):
        xb = split.x[s : s + batch_size].to(dev)
        if sop:
            out = model.explain(xb)
            preds.append(out.prediction.float().cpu())
            # groups with weight > 0, per map and output; then averaged
            active += float((out.weights > 0).sum(1).double().mean(1).sum())
            mask_frac += float(out.masks.flatten(2).double().mean(2).mean(1).sum())
        else:
            preds.append(model(xb).float().cpu())
    phys = split.destandardise(torch.cat(preds).double())
    names = list(split.param_names)
    skill = skill_scores(phys.numpy(), split.y_phys.double().numpy(), norm.target_mean, names)
    result: dict[str, Any] = {
        "mse": skill["mse"],
        "mse_mean": float(sum(skill["mse"].values()) / len(names)),
        "n": len(split),
        "r2": skill["r2"],
        "mse_constant": skill["mse_constant"],
    }
    if sop:
        result["sop"] = {
            "mean_active_groups": active / len(split),
            "mean_mask_fraction": mask_frac / len(split),
            "n_groups": int(model.n_groups),
        }
    with atomic_path(out_json) as tmp:
        tmp.write_text(json.dumps(result, indent=2) + "\n")
    log.info("evaluate %s on %s: %s", checkpoint, data, json.dumps(result))
    return result
