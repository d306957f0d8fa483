"""Explanations of one map by a trained cosmology SOP: its own groups, and post-hoc "-F" masks.

:func:`explain_map` explains one standardised map either with SOP (one forward pass: its
groups, weights and contributions) or with a post-hoc method of
:data:`sop_cosmo.attribution.baselines.METHODS` on the SOP's frozen backbone, turned into a
"-F" explanation: patch scores (sum of ``|attr|`` per patch of the attention grid), the ⌈k·U⌉
best patches kept, and the backbone's prediction on the input with the other patches at the
SOP's baseline value (:func:`fidelity_predictions`). Every method, SOP included, is scored by
the same per-patch insertion/deletion rule (``task="regression"``). The ``baselines`` stage
(:mod:`sop_cosmo.cosmo.stages.attribute`) runs it over maps and writes the tables; see
``docs/baselines.md``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from sop_cosmo.attribution import (
    grouped_insertion_deletion,
    insertion_deletion,
    keep_top_patches,
    patch_feature_mask,
    patch_scores,
)
from sop_cosmo.attribution.baselines import METHODS
from sop_cosmo.core import group_ranking, unit_ranking
from sop_cosmo.cosmo.config import BaselinesConfig

__all__ = [
    "DIRECTIONS",
    "MethodResult",
    "backbone_forward",
    "explain_map",
    "fidelity_predictions",
    "sop_patch_scores",
]

#: The two curves of every method, in the order of :attr:`MethodResult.aucs`.
DIRECTIONS: tuple[str, str] = ("insertion", "deletion")

Forward = Callable[[Tensor], Tensor]


def backbone_forward(model: nn.Module) -> tuple[nn.Module, Forward]:
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
    """One method's explanations of the analysed maps (one list entry per map).

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


def explain_map(
    method: str,
    model: nn.Module,
    x: Tensor,
    result: MethodResult,
    *,
    keep_fraction: float,
    n_samples: int = BaselinesConfig.n_samples,
    ig_steps: int = BaselinesConfig.ig_steps,
    seed: int = BaselinesConfig.seed,
    id_steps: int | None = BaselinesConfig.id_steps,
) -> None:
    """Explain one standardised map (C, H, W) with ``method`` and append to ``result``.

    ``method`` is "sop" or a key of :data:`~sop_cosmo.attribution.baselines.METHODS`; the
    settings are those of :class:`~sop_cosmo.cosmo.config.BaselinesConfig`.
    """
    bb, forward = backbone_forward(model)
    if bb.baseline.numel() != 1:
        raise ValueError("model: the -F baselines need a scalar SOP baseline value")
    baseline = float(bb.baseline.reshape(-1)[0])
    fmask = patch_feature_mask(tuple(x.shape[-2:]), bb.patch_size).to(x.device)
    if method == "sop":
        _explain_sop(model, x, result, fmask, baseline, id_steps)
        return
    n_out = int(bb.n_outputs)
    explainer = METHODS[method].from_settings(
        forward, layer=_last_conv(bb.encoder), n_samples=n_samples, n_steps=ig_steps
    )
    t0 = time.perf_counter()
    attrs = [
        explainer.attribute(x, p, patch_size=bb.patch_size, baseline=baseline, seed=seed)
        for p in range(n_out)
    ]
    _stop_clock(result, x, t0)
    scores = torch.stack([patch_scores(a, fmask) for a in attrs])  # (P, U)
    keep = torch.stack([keep_top_patches(s, keep_fraction) for s in scores])  # (P, U)
    pred = fidelity_predictions(model, x[None].expand(n_out, -1, -1, -1), keep)
    result.prediction.append(pred.diagonal().float().cpu().numpy())
    result.masks.append(keep.reshape(n_out, *bb.grid).cpu().numpy())
    result.selected.append(np.eye(n_out, dtype=bool))
    _add_patch_curves(result, forward, x, scores, fmask, baseline, id_steps)


def _explain_sop(
    model: nn.Module,
    x: Tensor,
    result: MethodResult,
    fmask: Tensor,
    baseline: float,
    id_steps: int | None,
) -> None:
    """SOP's own row: one forward pass, its groups on the patch rule, its grouped curves."""
    bb, forward = backbone_forward(model)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model.explain(x[None])
    _stop_clock(result, x, t0)
    masks = out.masks[0].reshape(out.masks.shape[1], -1)  # (G, U)
    contrib = out.contributions[0]  # (G, P)
    result.prediction.append(out.prediction[0].float().cpu().numpy())
    result.masks.append((masks > 0.5).reshape(-1, *bb.grid).cpu().numpy())
    result.selected.append((out.weights[0] > 0).cpu().numpy())
    # Every patch and group ranked: selected groups first, then the rest by their own output.
    keys = [group_ranking(out, p)[0] for p in range(int(bb.n_outputs))]
    scores = sop_patch_scores(masks, contrib)
    scores = torch.stack([unit_ranking(scores[p], masks, k) for p, k in enumerate(keys)])
    _add_patch_curves(result, forward, x, scores, fmask, baseline, id_steps)
    pix = bb.expand_mask(masks, x[None].expand(len(masks), -1, -1, -1)) > 0.5
    grouped = []
    for p in range(int(bb.n_outputs)):
        res = grouped_insertion_deletion(
            forward,
            x,
            pix,
            keys[p],
            baseline=baseline,
            task="regression",
            batch_size=128,
        )
        grouped.append([res.aucs[f"{m}/pred_sqerr/{p}"] for m in DIRECTIONS])
    grouped_arr = np.asarray(grouped).T
    result.add_curves("grouped_insertion", grouped_arr[0], None)
    result.add_curves("grouped_deletion", grouped_arr[1], None)


def _stop_clock(result: MethodResult, x: Tensor, t0: float) -> None:
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    result.seconds.append(time.perf_counter() - t0)


def _last_conv(module: nn.Module) -> nn.Module:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError("model: the backbone has no Conv2d layer for LayerGradCam")
    return convs[-1]


def _add_patch_curves(
    result: MethodResult,
    forward: Forward,
    x: Tensor,
    scores: Tensor,
    fmask: Tensor,
    baseline: float,
    id_steps: int | None,
) -> None:
    """Per-patch insertion/deletion of each output p ranked by ``scores[p]`` (P, U), scored
    on output p: appends (P,) AUCs and (P, S) curves per direction, and sets the fractions."""
    aucs, curves = [], []
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
        names = [f"{mode}/pred_sqerr/{p}" for mode in DIRECTIONS]
        aucs.append([res.aucs[n] for n in names])
        curves.append([res.curves[n].cpu().numpy() for n in names])
        result.fractions = res.fractions.cpu().numpy()
    auc_arr, curve_arr = np.asarray(aucs).T, np.asarray(curves).transpose(1, 0, 2)
    for d, mode in enumerate(DIRECTIONS):
        result.add_curves(mode, auc_arr[d], curve_arr[d])
