"""Rank every group and every unit of an SOP explanation, not only the selected ones.

The selector gives most groups weight exactly 0, so ranking by contribution alone ties all
unselected groups (and the units only they hold); a deletion curve then continues in index
order, i.e. at random, after the last selected group. Here the selected groups come first,
ordered by contribution, and the unselected ones follow, ordered by their own output: what the
group would say on its own.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .model import SOPOutput

__all__ = ["group_ranking", "unit_ranking"]

_TINY = 1e-12


def _unit_interval(v: Tensor) -> Tensor:
    """``v`` scaled into [-1, 1] along the last axis (order kept)."""
    return v / (v.abs().amax(-1, keepdim=True) + _TINY)


def group_ranking(output: SOPOutput, index: int, *, signed: bool = False) -> Tensor:
    """(B, G) keys, larger first, ranking all groups for output ``index``.

    Selected groups (weight > 0) get keys in [2, 4] ordered by their contribution w·y; the
    others get keys in [-1, 1] ordered by their own output y. ``signed`` orders by the signed
    value (classification: evidence for the class first), else by magnitude (regression).
    """
    contrib = output.contributions[..., index].double()  # (B, G)
    own = output.group_outputs[..., index].double()  # (B, G)
    if not signed:
        contrib, own = contrib.abs(), own.abs()
    selected = output.weights[..., index] > 0
    return torch.where(selected, 3.0 + _unit_interval(contrib), _unit_interval(own))


def unit_ranking(unit_scores: Tensor, masks: Tensor, group_keys: Tensor) -> Tensor:
    """(N,) keys ranking every unit of one input: its own score, then its best group.

    Parameters
    ----------
    unit_scores : Tensor
        (N,) the method's unit scores from the selected groups (e.g. Σ_g w_g m_g(u)); units
        with a non-zero score come first, in that order.
    masks : Tensor
        (G, N) the input's group masks.
    group_keys : Tensor
        (G,) keys of :func:`group_ranking` for that input.

    Returns
    -------
    Tensor
        float64 keys: in [2, 4] for units with a non-zero score, in [-1, 1] for the others by
        the best key of an unselected group holding them, -2 for units in no group.
    """
    scored = unit_scores.double()
    held = masks.double() > 0.5  # (G, N)
    best = torch.where(
        held, group_keys.double().unsqueeze(-1), torch.tensor(-2.0, dtype=torch.float64)
    )
    best = best.amax(0).clamp(max=1.0)  # selected groups' keys > 1: those units are scored
    return torch.where(scored != 0, 3.0 + _unit_interval(scored), best)
