"""Skill of a regressor on a test set, before anything it does is interpreted.

Per parameter: the MSE of the predictions, the MSE of the constant predictor that always
answers the training mean (what a model without skill reaches), and the coefficient of
determination R² = 1 − MSE / Var(y_test) (1 is perfect, 0 is no better than the test mean,
negative is worse). :func:`skill_scores` gives them for one model, :func:`ensemble_skill`
combines training seeds, :func:`per_cosmology` gives the predicted-vs-true table per test
cosmology. Pure maths: no file I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ensemble_skill", "per_cosmology", "r2_scores", "skill_scores"]


def _pair(pred: ArrayLike, true: ArrayLike) -> tuple[NDArray, NDArray]:
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if p.ndim != 2 or p.shape != t.shape or p.shape[0] < 1:
        raise ValueError(f"pred and true: expected equal (N, P) shapes, got {p.shape}, {t.shape}")
    if not (np.isfinite(p).all() and np.isfinite(t).all()):
        raise ValueError("pred and true: contain NaN or infinite values")
    return p, t


def r2_scores(pred: ArrayLike, true: ArrayLike) -> list[float | None]:
    """R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² per column; None where the targets are constant (a test
    set of one cosmology), where R² is undefined."""
    p, t = _pair(pred, true)
    sse = ((p - t) ** 2).sum(0)
    sst = ((t - t.mean(0)) ** 2).sum(0)
    varies = np.ptp(t, axis=0) > 0  # the mean of equal values may round: test the range
    return [float(1.0 - a / b) if v else None for a, b, v in zip(sse, sst, varies, strict=True)]


def skill_scores(
    pred: ArrayLike, true: ArrayLike, train_mean: ArrayLike, names: Sequence[str]
) -> dict[str, dict[str, float | None]]:
    """R², MSE and the MSE of the constant training-mean predictor, per parameter.

    Parameters
    ----------
    pred, true : array_like
        (N, P) predictions and targets in physical units.
    train_mean : array_like
        (P,) the training set's target means (the checkpoint's normalisation).
    names : sequence of str
        P parameter names (the keys).

    Returns
    -------
    dict
        ``{"r2": {p: float | None}, "mse": {p: float}, "mse_constant": {p: float}}``.
    """
    p, t = _pair(pred, true)
    m = np.asarray(train_mean, dtype=np.float64)
    if m.shape != (p.shape[1],) or len(names) != p.shape[1]:
        raise ValueError(f"train_mean and names: expected {p.shape[1]} values each")
    mse = ((p - t) ** 2).mean(0)
    const = ((t - m) ** 2).mean(0)
    return {
        "r2": dict(zip(names, r2_scores(p, t), strict=True)),
        "mse": {n: float(v) for n, v in zip(names, mse, strict=True)},
        "mse_constant": {n: float(v) for n, v in zip(names, const, strict=True)},
    }


def ensemble_skill(per_seed: Sequence[dict[str, Any]], min_r2: float) -> dict[str, Any]:
    """Skill of several training seeds: means over seeds, and the gate.

    ``passed`` is True only when every seed reaches R² ≥ ``min_r2`` on every parameter (an
    undefined R² fails): the analysis interprets every seed's groups, so every seed must have
    skill. ``r2_per_seed`` lists each seed's R² in seed order.
    """
    if not per_seed:
        raise ValueError("per_seed: no seed to score")
    names = list(per_seed[0]["r2"])
    out: dict[str, Any] = {}
    for key in ("r2", "mse", "mse_constant"):
        out[key] = {}
        for n in names:
            vals = [s[key][n] for s in per_seed]
            out[key][n] = None if any(v is None for v in vals) else float(np.mean(vals))
    out["r2_per_seed"] = {n: [s["r2"][n] for s in per_seed] for n in names}
    out["min_r2"] = float(min_r2)
    out["passed"] = all(
        v is not None and v >= min_r2 for vals in out["r2_per_seed"].values() for v in vals
    )
    out["n_seeds"] = len(per_seed)
    return out


def per_cosmology(
    preds: ArrayLike, true: ArrayLike, cosmo_id: ArrayLike, names: Sequence[str]
) -> list[dict[str, Any]]:
    """Predicted vs true per test cosmology.

    Parameters
    ----------
    preds : array_like
        (S, N, P) predictions of S seeds (or (N, P) for one).
    true : array_like
        (N, P) targets.
    cosmo_id : array_like
        (N,) cosmology of each map.
    names : sequence of str
        P parameter names.

    Returns
    -------
    list of dict
        One row per cosmology (in id order): ``cosmo_id``, ``n_maps``, ``true`` {p},
        ``pred_mean`` {p} (over its maps and the seeds), ``pred_std`` {p} (over its maps and
        the seeds) and ``pred_seed_mean`` {p: [per seed]}.
    """
    p = np.asarray(preds, dtype=np.float64)
    p = p[None] if p.ndim == 2 else p
    t = np.asarray(true, dtype=np.float64)
    ids = np.asarray(cosmo_id)
    if p.ndim != 3 or p.shape[1:] != t.shape or ids.shape != (t.shape[0],):
        raise ValueError(f"preds (S, N, P), true (N, P), cosmo_id (N,): got {p.shape}, "
                         f"{t.shape}, {ids.shape}")  # fmt: skip
    rows = []
    for c in np.unique(ids):
        sel = ids == c
        block = p[:, sel]  # (S, n, P)
        rows.append({
            "cosmo_id": int(c),
            "n_maps": int(sel.sum()),
            "true": {n: float(t[sel, j].mean()) for j, n in enumerate(names)},
            "pred_mean": {n: float(block[..., j].mean()) for j, n in enumerate(names)},
            "pred_std": {n: float(block[..., j].std()) for j, n in enumerate(names)},
            "pred_seed_mean": {n: block[..., j].mean(1).tolist() for j, n in enumerate(names)},
        })  # fmt: skip
    return rows
