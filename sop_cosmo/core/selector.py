"""Group selector: sparse cross-attention from one query per output to the G group keys.

Two ways to turn scores into weights (``active``):

an integer K (the default of :class:`~sop_cosmo.core.model.SOPConfig`)
    The scores are standardised over the groups of each input and output, and sparsemax runs
    at the temperature that leaves exactly K groups with non-zero weight
    (:func:`budget_sparsemax`). The number of active groups is then a setting, not an
    accident of the backbone's output scale.
``None``
    Sparsemax of ``scale`` times the raw scores (the anchor's rule, kept for ablations): the
    support then depends on how far apart the groups' scores happen to be.

Queries start as a copy of the backbone head's weights (when the head is linear) and keys are
the pooled backbone features of each masked input, both through identity-initialised
projections. At initialisation a group's score is therefore its own predicted value for that
output — a bias worth knowing (see docs/core.md): an untrained selector prefers the group with the
largest prediction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .sparsemax import sparsemax

__all__ = ["GroupSelector", "budget_sparsemax"]

# T·gap = 1 + _MARGIN puts the (K+1)-th group strictly below the sparsemax threshold.
_MARGIN = 1e-3


def budget_sparsemax(
    scores: Tensor, active: int, dim: int = 1, valid: Tensor | None = None
) -> Tensor:
    """Sparsemax over ``dim`` of the standardised scores, with exactly ``active`` non-zeros.

    With z the scores standardised along ``dim`` and z₍₁₎ ≥ z₍₂₎ ≥ … sorted, the temperature
    T = (1 + ε) / Σ_{j≤K} (z₍ⱼ₎ − z₍K+1₎) is the largest at which the K-th group still
    has weight, so ``sparsemax(T·z)`` keeps the K best groups (fewer only at exact ties).
    T is a constant of the backward pass. ``active ≥ G`` keeps every group (T halves the
    spread to the lowest score).

    ``valid`` (broadcastable to ``scores``, bool) marks the candidates: the others get −∞
    before sparsemax (weight exactly 0) and take no part in the standardisation or the
    budget, which becomes min(K, valid candidates).
    """
    g = scores.shape[dim]
    if active < 1:
        raise ValueError(f"active: expected at least 1 group, got {active}")
    if valid is not None:
        return _masked_budget_sparsemax(scores, active, dim, valid.expand_as(scores).bool())
    mean = scores.mean(dim, keepdim=True)
    std = scores.std(dim, keepdim=True, unbiased=False).clamp_min(1e-6)
    z = (scores - mean) / std
    ranked = torch.sort(z.detach(), dim=dim, descending=True).values
    if active >= g:
        gap = 2.0 * (ranked - ranked.narrow(dim, g - 1, 1)).sum(dim, keepdim=True)
    else:
        top = ranked.narrow(dim, 0, active).sum(dim, keepdim=True)
        gap = top - active * ranked.narrow(dim, active, 1)
    temperature = (1.0 + _MARGIN) / gap.clamp_min(1e-6)
    return sparsemax(temperature * z, dim=dim)


def _masked_budget_sparsemax(scores: Tensor, active: int, dim: int, valid: Tensor) -> Tensor:
    """:func:`budget_sparsemax` over the ``valid`` entries only; the others get weight 0."""
    w = valid.to(scores.dtype)
    count = w.sum(dim, keepdim=True)
    if bool((count < 1).any()):
        raise ValueError("valid: every input needs at least one valid group")
    mean = (scores * w).sum(dim, keepdim=True) / count
    var = (((scores - mean) * w) ** 2).sum(dim, keepdim=True) / count
    std = var.clamp_min(1e-12).sqrt()  # clamp before sqrt: a finite gradient at one group
    z = torch.where(valid, (scores - mean) / std, float("-inf"))
    ranked = torch.sort(z.detach(), dim=dim, descending=True).values  # invalid last
    finite = torch.where(torch.isfinite(ranked), ranked, 0.0)
    n_valid = count.long()
    k = n_valid.clamp(max=active)  # the budget, per input and output
    pos = torch.arange(ranked.shape[dim], device=z.device)
    pos = pos.view([-1 if d == dim % z.dim() else 1 for d in range(z.dim())])
    # keep every valid group: twice the spread to the lowest valid score
    lowest = finite.gather(dim, n_valid - 1)
    gap_all = 2.0 * torch.where(pos < n_valid, finite - lowest, 0.0).sum(dim, keepdim=True)
    # keep K < valid: the K best above the (K+1)-th
    top = torch.where(pos < k, finite, 0.0).sum(dim, keepdim=True)
    gap_k = top - k * finite.gather(dim, k.clamp(max=ranked.shape[dim] - 1))
    gap = torch.where(k >= n_valid, gap_all, gap_k)
    temperature = (1.0 + _MARGIN) / gap.clamp_min(1e-6)
    return sparsemax(temperature * z, dim=dim)


class GroupSelector(nn.Module):
    """Sparsemax weights (B, G, C) over groups, one distribution per output.

    Parameters
    ----------
    pooled_dim : int
        Size E of the pooled group features.
    n_outputs : int
        Number of outputs C.
    scale : float
        Multiplier on the raw scores before sparsemax; used only when ``active`` is None.
    active : int or None
        Groups with non-zero weight per input and output (:func:`budget_sparsemax`); None for
        sparsemax of ``scale`` × the raw scores. Training may change it (e.g. start dense).
    init_queries : Tensor, optional
        (C, E) initial queries, e.g. the backbone head's weight; random when None.
    """

    def __init__(
        self,
        pooled_dim: int,
        n_outputs: int,
        *,
        scale: float,
        active: int | None,
        init_queries: Tensor | None = None,
    ) -> None:
        super().__init__()
        if init_queries is None:
            init_queries = torch.randn(n_outputs, pooled_dim) / math.sqrt(pooled_dim)
        elif tuple(init_queries.shape) != (n_outputs, pooled_dim):
            raise ValueError(
                f"init_queries: expected shape ({n_outputs}, {pooled_dim}), "
                f"got {tuple(init_queries.shape)}"
            )
        self.scale, self.active = scale, active
        self.queries = nn.Parameter(init_queries.detach().clone().float())
        self.query_proj = nn.Linear(pooled_dim, pooled_dim, bias=False)
        self.key_proj = nn.Linear(pooled_dim, pooled_dim, bias=False)
        nn.init.eye_(self.query_proj.weight)
        nn.init.eye_(self.key_proj.weight)

    def forward(self, group_features: Tensor, group_valid: Tensor | None = None) -> Tensor:
        """Weights (B, G, C) for pooled group features (B, G, E); each column sums to 1.

        ``group_valid`` (B, G) bool marks the candidate groups (given segments may leave some
        empty): the others get −∞ score before sparsemax, hence weight exactly 0. Always in
        fp32: under bf16 autocast the weights would be off by a few percent and would no longer
        sum to 1.
        """
        with torch.autocast(device_type=group_features.device.type, enabled=False):
            keys = self.key_proj(group_features.float())  # (B, G, E)
            queries = self.query_proj(self.queries)  # (C, E)
            scores = torch.einsum("bge,ce->bgc", keys, queries)  # (B, G, C)
            valid = None if group_valid is None else group_valid.bool().unsqueeze(-1)
            if self.active is None:
                scores = self.scale * scores
                if valid is not None:
                    if not bool(valid.any(1).all()):
                        raise ValueError("group_valid: every input needs at least one valid group")
                    scores = scores.masked_fill(~valid, float("-inf"))
                return sparsemax(scores, dim=1)
            return budget_sparsemax(scores, self.active, dim=1, valid=valid)
