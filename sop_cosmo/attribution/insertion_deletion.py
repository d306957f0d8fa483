"""Insertion and deletion curves for one input, per unit or per (possibly overlapping) group.

Insertion starts from the baseline and reveals the highest-scored units first; deletion starts
from the input and replaces the highest-scored units by the baseline first. Both curves share one
x-axis, the fraction of units (or groups) changed, from 0 to 1, and are scored by the single
rule in :mod:`sop_cosmo.attribution.scoring`.

All perturbed inputs of a curve are built by broadcasting (no loop over steps) and the model
sees them in chunks of at most ``batch_size``; each chunk's inputs are materialised only when it
is evaluated, so long curves over large inputs do not need all steps in memory at once.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .auc import trapezoid_auc
from .scoring import (
    MODES,
    ScoringRule,
    build_scoring_rule,
    higher_is_better,
    score_outputs,
    validate_task,
)

__all__ = [
    "InsertionDeletionResult",
    "Model",
    "grouped_insertion_deletion",
    "insertion_deletion",
    "stack_aucs",
]

Model = Callable[[Tensor], Tensor]
"""Any callable mapping a batch of shape (n, *x.shape) to outputs of shape (n, C)."""

# Builds the "changed" masks (True = revealed for insertion, replaced for deletion) of curve
# steps [start, stop) as a bool tensor of shape (stop - start, *x.shape).
_MaskChunk = Callable[[int, int], Tensor]


@dataclass(frozen=True)
class InsertionDeletionResult:
    """Insertion and deletion curves of one input and their areas.

    Attributes
    ----------
    fractions : Tensor
        (S,) float64 x-axis: fraction of units (or groups) changed at each step, 0 to 1.
    curves : dict of str to Tensor
        ``"{mode}/{kind}"`` (e.g. ``"insertion/prob"``, ``"deletion/pred_sqerr/0"``) to the (S,)
        float64 curve values; see :mod:`sop_cosmo.attribution.scoring`.
    aucs : dict of str to float
        Same keys: trapezoid area of each curve over ``fractions``.
    higher_is_better : dict of str to bool
        Same keys: whether a larger AUC means a better attribution.
    order : Tensor
        Unit (or group) indices, most important first, in the order they are changed.
    outputs : dict of str to Tensor
        ``"insertion"`` and ``"deletion"`` to the raw (S, C) model outputs along each curve.
    rule : ScoringRule
        The scoring rule, fixed on the full input (task, scored class, label).
    """

    fractions: Tensor
    curves: dict[str, Tensor]
    aucs: dict[str, float]
    higher_is_better: dict[str, bool]
    order: Tensor
    outputs: dict[str, Tensor]
    rule: ScoringRule


def insertion_deletion(
    model: Model,
    x: Tensor,
    attribution: Tensor,
    *,
    feature_mask: Tensor | None = None,
    baseline: float | Tensor = 0.0,
    n_steps: int | None = None,
    task: str,
    label: Any = None,
    batch_size: int = 64,
) -> InsertionDeletionResult:
    """Insertion and deletion curves of one input, changing one unit at a time in score order.

    Parameters
    ----------
    model : callable
        Maps a batch (n, *x.shape) to outputs (n, C): logits for classification, predictions
        for regression. Called under ``torch.no_grad()``; put modules in eval mode first.
    x : Tensor
        One input without batch dimension, any shape: image (C, H, W), token embeddings (L, E),
        token ids (L,), tabular (d,).
    attribution : Tensor
        Importance scores. Shape ``x.shape`` (one per element) or, with ``feature_mask``,
        ``(U,)`` (one per unit). With a feature mask and an element-shaped attribution the unit
        score is the sum over the unit's elements; when ``x`` is 1-D with U elements the shape
        ``x.shape`` wins, i.e. the attribution is read per element.
    feature_mask : Tensor, optional
        Integer unit ids 0..U-1, broadcastable to ``x.shape`` (as captum's ``feature_mask``):
        e.g. ``(1, H, W)`` patch ids for an image or ``arange(L)[:, None]`` for tokens of an
        (L, E) input. Every id must own at least one element. None: each element is a unit.
    baseline : float or Tensor
        Value of a hidden element: a number, or a tensor broadcastable to ``x.shape``.
    n_steps : int, optional
        Number of steps S - 1; step k changes ``floor(k * U / n_steps)`` units, so the curve has
        n_steps + 1 points from 0 to all U units. Default: one step per unit (n_steps = U).
    task : {"classification", "regression"}
        Scoring rule; see :mod:`sop_cosmo.attribution.scoring`.
    label : Tensor or float, optional
        Regression label (C values) for the ``label_sqerr`` curves. Must be None for
        classification.
    batch_size : int
        Most inputs per model call.

    Returns
    -------
    InsertionDeletionResult
        Curves and AUCs; ``order`` lists unit ids, most important first (descending score,
        ties broken by the lower id).

    Raises
    ------
    ValueError
        On any shape or value mismatch; the message names the argument and what to pass.
    """
    task = validate_task(task)
    x = _check_x(x)
    _check_batch_size(batch_size)
    base = _prepare_baseline(baseline, x)
    unit_ids, unit_scores = _unit_ids_and_scores(x, attribution, feature_mask)
    n_units = int(unit_scores.shape[0])

    order = torch.sort(unit_scores, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank[order] = torch.arange(n_units, device=order.device)
    element_rank = rank[unit_ids]  # x.shape: position of each element's unit in the order

    counts = _step_counts(n_units, n_steps).to(x.device)
    fractions = counts.to(torch.float64) / n_units
    trailing = (1,) * x.dim()

    def chunk_masks(start: int, stop: int) -> Tensor:
        return element_rank.unsqueeze(0) < counts[start:stop].view(-1, *trailing)

    return _run_curves(model, x, base, chunk_masks, fractions, order, task, label, batch_size)


def grouped_insertion_deletion(
    model: Model,
    x: Tensor,
    group_masks: Tensor,
    group_scores: Tensor,
    *,
    baseline: float | Tensor = 0.0,
    task: str,
    label: Any = None,
    batch_size: int = 64,
) -> InsertionDeletionResult:
    """Insertion and deletion curves over (possibly overlapping) groups of elements.

    Groups are ranked by score, descending (ties: lower index first). Insertion step k shows
    the input on the UNION of the top-k groups and the baseline elsewhere; deletion step k
    replaces that union by the baseline. Elements shared by several groups are changed once,
    when their first group is reached; elements in no group are never changed, so insertion
    ends at the input only if the groups cover it.

    Parameters
    ----------
    model : callable
        Maps a batch (n, *x.shape) to outputs (n, C); see :func:`insertion_deletion`.
    x : Tensor
        One input without batch dimension, any shape.
    group_masks : Tensor
        (G, *x.shape) bool or {0, 1} membership masks; each of the trailing dimensions may also
        be 1 to broadcast, e.g. (G, 1, H, W) for masks shared across image channels.
    group_scores : Tensor
        (G,) group importance, e.g. SOP's group weights for the explained output.
    baseline : float or Tensor
        Value of a hidden element: a number, or a tensor broadcastable to ``x.shape``.
    task : {"classification", "regression"}
        Scoring rule; see :mod:`sop_cosmo.attribution.scoring`.
    label : Tensor or float, optional
        Regression label for the ``label_sqerr`` curves; None for classification.
    batch_size : int
        Most inputs per model call.

    Returns
    -------
    InsertionDeletionResult
        G + 1 points at fractions k / G; ``order`` lists group indices, most important first.

    Raises
    ------
    ValueError
        On any shape or value mismatch; the message names the argument and what to pass.
    """
    task = validate_task(task)
    x = _check_x(x)
    _check_batch_size(batch_size)
    base = _prepare_baseline(baseline, x)
    masks = _check_group_masks(group_masks, x)
    n_groups = int(masks.shape[0])
    scores = _check_scores(group_scores, n_groups, x.device, name="group_scores")

    order = torch.sort(scores, descending=True, stable=True).indices
    # Cumulative logical OR (not a sum): an element in two selected groups is changed once.
    union = torch.cummax(masks[order], dim=0).values
    empty = torch.zeros((1, *x.shape), dtype=torch.bool, device=x.device)
    steps = torch.cat([empty, union])
    fractions = torch.arange(n_groups + 1, dtype=torch.float64, device=x.device) / n_groups

    def chunk_masks(start: int, stop: int) -> Tensor:
        return steps[start:stop]

    return _run_curves(model, x, base, chunk_masks, fractions, order, task, label, batch_size)


def stack_aucs(results: Sequence[InsertionDeletionResult]) -> dict[str, Tensor]:
    """Collect the AUCs of several inputs' results, e.g. to average them over a data set.

    Parameters
    ----------
    results : sequence of InsertionDeletionResult
        Results of :func:`insertion_deletion` or :func:`grouped_insertion_deletion`, all with
        the same curve names (same task, output count and label presence).

    Returns
    -------
    dict of str to Tensor
        Curve name to the (N,) float64 AUCs in input order; ``.mean()`` gives the data-set
        score.

    Raises
    ------
    ValueError
        If ``results`` is empty or the results have different curve names.
    """
    if len(results) == 0:
        raise ValueError("results: pass at least one InsertionDeletionResult.")
    names = list(results[0].aucs)
    for i, res in enumerate(results):
        if list(res.aucs) != names:
            raise ValueError(
                f"results: result {i} has curves {list(res.aucs)} but result 0 has {names}; "
                "pass results computed with the same task, outputs and label presence."
            )
    return {
        name: torch.tensor([res.aucs[name] for res in results], dtype=torch.float64)
        for name in names
    }


def _run_curves(
    model: Model,
    x: Tensor,
    base: Tensor,
    chunk_masks: _MaskChunk,
    fractions: Tensor,
    order: Tensor,
    task: str,
    label: Any,
    batch_size: int,
) -> InsertionDeletionResult:
    """Evaluate both curves chunk by chunk, score them and integrate them."""
    n_points = int(fractions.shape[0])
    inserted: list[Tensor] = []
    deleted: list[Tensor] = []
    with torch.no_grad():
        rule = build_scoring_rule(task, _call_model(model, x.unsqueeze(0), 1)[0], label)
        for start in range(0, n_points, batch_size):
            changed = chunk_masks(start, min(start + batch_size, n_points))
            n = int(changed.shape[0])
            inserted.append(_call_model(model, torch.where(changed, x, base), n))
            deleted.append(_call_model(model, torch.where(changed, base, x), n))
    outputs = {"insertion": torch.cat(inserted), "deletion": torch.cat(deleted)}

    curves: dict[str, Tensor] = {}
    aucs: dict[str, float] = {}
    better: dict[str, bool] = {}
    axis = fractions.to(rule.full_output.device)
    for mode in MODES:
        for kind, curve in score_outputs(rule, outputs[mode]).items():
            name = f"{mode}/{kind}"
            curves[name] = curve
            aucs[name] = float(trapezoid_auc(curve, axis))
            better[name] = higher_is_better(mode, kind)
    return InsertionDeletionResult(
        fractions=fractions,
        curves=curves,
        aucs=aucs,
        higher_is_better=better,
        order=order,
        outputs=outputs,
        rule=rule,
    )


def _call_model(model: Model, batch: Tensor, n: int) -> Tensor:
    """Call ``model`` and check that it returned (n, C)."""
    out = model(batch)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != n:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"model: must map a batch of shape (n, *x.shape) to a tensor of shape (n, C); got "
            f"{got} for n={n}. Wrap a single-output model, e.g. "
            "lambda b: model(b).reshape(len(b), -1)."
        )
    return out.detach()


def _check_x(x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        raise ValueError(f"x: pass one input as a torch.Tensor; got {type(x).__name__}.")
    if x.dim() == 0 or x.numel() == 0:
        raise ValueError(
            f"x: pass one non-empty input without batch dimension (at least 1-D); got shape "
            f"{tuple(x.shape)}."
        )
    return x.detach()


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise ValueError(f"batch_size: pass a positive integer; got {batch_size!r}.")
    if batch_size < 1:
        raise ValueError(f"batch_size: pass a positive integer; got {batch_size!r}.")


def _prepare_baseline(baseline: Any, x: Tensor) -> Tensor:
    """Baseline as a tensor of x's dtype and device that broadcasts to x's shape."""
    if isinstance(baseline, Tensor):
        if not _broadcasts_to(baseline.shape, x.shape):
            raise ValueError(
                f"baseline: a tensor baseline must be broadcastable to x's shape "
                f"{tuple(x.shape)}; got {tuple(baseline.shape)}. Pass a float or a tensor of "
                "x's shape."
            )
        return baseline.detach().to(device=x.device, dtype=x.dtype)
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        if not (x.is_floating_point() or float(baseline).is_integer()):
            # A fractional fill value would be silently truncated for integer inputs (token ids).
            raise ValueError(
                f"baseline: x has integer dtype {x.dtype}; pass an integer baseline (e.g. a pad "
                f"token id); got {baseline!r}."
            )
        return torch.tensor(baseline, dtype=x.dtype, device=x.device)
    raise ValueError(
        f"baseline: pass a float or a tensor broadcastable to x's shape; got "
        f"{type(baseline).__name__}."
    )


def _unit_ids_and_scores(x: Tensor, attribution: Any, feature_mask: Any) -> tuple[Tensor, Tensor]:
    """Unit id of every element (x.shape, int64) and one score per unit (U,)."""
    attr = torch.as_tensor(attribution).detach().to(device=x.device, dtype=torch.float64)
    if torch.isnan(attr).any():
        raise ValueError("attribution: contains NaN, which cannot be ranked; pass finite scores.")
    if feature_mask is None:
        if attr.shape != x.shape:
            raise ValueError(
                f"attribution: without feature_mask it needs x's shape {tuple(x.shape)} (one "
                f"score per element); got {tuple(attr.shape)}. Pass a feature_mask to score "
                "units."
            )
        ids = torch.arange(x.numel(), device=x.device).view(x.shape)
        return ids, attr.reshape(-1)

    mask = torch.as_tensor(feature_mask, device=x.device)
    if mask.dtype == torch.bool or mask.is_floating_point() or mask.is_complex():
        raise ValueError(
            f"feature_mask: pass an integer tensor of unit ids 0..U-1; got dtype {mask.dtype}."
        )
    if not _broadcasts_to(mask.shape, x.shape):
        raise ValueError(
            f"feature_mask: must be broadcastable to x's shape {tuple(x.shape)}; got "
            f"{tuple(mask.shape)}."
        )
    ids = mask.to(torch.int64).broadcast_to(x.shape)
    if int(ids.min()) < 0:
        raise ValueError("feature_mask: unit ids must be >= 0; pass ids 0..U-1.")
    flat_ids = ids.reshape(-1)
    if attr.shape == x.shape:
        n_units = int(ids.max()) + 1
        scores = torch.zeros(n_units, dtype=torch.float64, device=x.device)
        scores.index_add_(0, flat_ids, attr.reshape(-1))
    elif attr.dim() == 1:
        n_units = int(attr.shape[0])
        if int(ids.max()) >= n_units:
            raise ValueError(
                f"attribution: has {n_units} unit scores but feature_mask uses id "
                f"{int(ids.max())}; pass one score per unit id 0..{int(ids.max())}."
            )
        scores = attr
    else:
        raise ValueError(
            f"attribution: with feature_mask pass x's shape {tuple(x.shape)} (summed per unit) "
            f"or (U,) (one score per unit); got {tuple(attr.shape)}."
        )
    present = torch.bincount(flat_ids, minlength=n_units) > 0
    if not bool(present.all()):
        missing = torch.nonzero(~present).flatten()[:5].tolist()
        raise ValueError(
            f"feature_mask: every unit id 0..{n_units - 1} must own at least one element; ids "
            f"{missing} own none. Renumber the units contiguously."
        )
    return ids, scores


def _step_counts(n_units: int, n_steps: Any) -> Tensor:
    """Units changed at each of the n_steps + 1 curve points, from 0 to n_units."""
    if n_steps is None:
        n_steps = n_units
    if (
        isinstance(n_steps, bool)
        or not isinstance(n_steps, numbers.Integral)
        or not 1 <= n_steps <= n_units
    ):
        raise ValueError(
            f"n_steps: pass an integer in [1, {n_units}] (the number of units), or None for one "
            f"step per unit; got {n_steps!r}."
        )
    k = torch.arange(int(n_steps) + 1, dtype=torch.int64)
    # Floor division stays strictly increasing because n_units / n_steps >= 1.
    return (k * n_units) // int(n_steps)


def _check_group_masks(group_masks: Any, x: Tensor) -> Tensor:
    """Group masks as bool (G, *x.shape) on x's device."""
    masks = torch.as_tensor(group_masks, device=x.device)
    if masks.dim() != x.dim() + 1 or not _broadcasts_to(masks.shape[1:], x.shape):
        raise ValueError(
            f"group_masks: expected shape (G, *x.shape) = (G, {', '.join(map(str, x.shape))}); "
            f"got {tuple(masks.shape)}."
        )
    if masks.shape[0] == 0:
        raise ValueError("group_masks: pass at least one group (G >= 1).")
    if masks.dtype != torch.bool:
        if not bool(((masks == 0) | (masks == 1)).all()):
            raise ValueError(
                "group_masks: must be bool or contain only 0 and 1; threshold soft masks "
                "first, e.g. group_masks > 0.5."
            )
        masks = masks != 0
    return masks.broadcast_to((masks.shape[0], *x.shape))


def _check_scores(scores: Any, n: int, device: torch.device, *, name: str) -> Tensor:
    s = torch.as_tensor(scores).detach().to(device=device, dtype=torch.float64)
    if s.shape != (n,):
        raise ValueError(
            f"{name}: expected shape ({n},), one score per group; got {tuple(s.shape)}."
        )
    if torch.isnan(s).any():
        raise ValueError(f"{name}: contains NaN, which cannot be ranked; pass finite scores.")
    return s


def _broadcasts_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    try:
        return tuple(torch.broadcast_shapes(tuple(shape), tuple(target))) == tuple(target)
    except RuntimeError:
        return False
