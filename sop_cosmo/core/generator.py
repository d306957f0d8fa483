"""Group generator: multi-head attention from G anchor queries to all units, then top-k masks.

Each group g attends from a query (the feature of an anchor unit plus a learned group embedding)
to every unit. The k·N units with the highest head-averaged score form the group's hard binary
mask.

How gradient reaches the generator (``mask_mode``):

``"ste"`` (default)
    Straight-through estimator: the forward pass uses the hard mask; the backward pass uses the
    derivative of ``sigmoid((s - t) / τ)``, with t midway between the last kept and the first
    dropped score and τ the row's score spread. The task loss thus moves every unit's score.
``"anchor"``
    The anchor implementation's scheme, kept for ablations: hard masks with no gradient; the
    generator learns only through the gate ``c = Σ_top p − Σ_rest p`` (p the softmax of the
    scores), which the model multiplies into each group's output (in training and evaluation).

Competition (``compete=True``): before the top-k, each unit's scores are centred over the G
groups. What every group would take alike (the common, most salient region) cancels, so a
unit goes to the groups that want it more than the others do; and the gradient that would
pull every group towards one region (all groups see the same gradient while the selector's
weights are near uniform) has zero component after the centring. Without it the groups
collapse onto copies of one mask.

Exploration (``explore_noise=σ``, training only, ``"ste"`` mode): Gumbel noise of σ × the
row's score spread is added to the scores before the top-k. A unit ranked far below the
threshold has almost no surrogate gradient, so a unit that helps only together with another
(a conjunction of two words) can stay out of every group for good; the noise lets it into
some groups now and then, where the loss can pull it up. Evaluation is noise-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["GeneratedGroups", "GroupGenerator", "topk_rank_mask"]

MASK_MODES = ("ste", "anchor")


@dataclass
class GeneratedGroups:
    """Masks over units and what produced them.

    Attributes
    ----------
    masks : Tensor
        (B, G, N) in {0, 1} in the forward pass (carrying the STE gradient in ``"ste"`` mode).
    scores : Tensor
        (B, G, N) head-averaged attention scores (−inf on invalid units).
    gate : Tensor or None
        (B, G) anchor gate c in ``"anchor"`` mode, else None.
    """

    masks: Tensor
    scores: Tensor
    gate: Tensor | None


def topk_rank_mask(scores: Tensor, n_keep: Tensor) -> Tensor:
    """Hard mask of the ``n_keep`` highest scores along the last axis.

    Parameters
    ----------
    scores : Tensor
        (..., N) scores; ties are broken by position, so exactly ``n_keep`` entries are kept.
    n_keep : Tensor
        Integer counts broadcastable to ``scores.shape[:-1]``.

    Returns
    -------
    Tensor
        Float mask of ``scores``' shape.
    """
    order = torch.argsort(scores, dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(scores.shape[-1], device=scores.device).expand_as(order))
    return (rank < n_keep.unsqueeze(-1)).to(scores.dtype)


class GroupGenerator(nn.Module):
    """Attention-based generator of G sparse group masks.

    Parameters
    ----------
    feature_dim : int
        Size D of the unit features.
    n_groups : int
        Number of groups G.
    keep_fraction : float
        Fraction k of valid units each group keeps (at least one unit).
    n_heads : int
        Attention heads; their scores are averaged.
    scale : float
        Multiplier on the attention scores (sharper or flatter groups).
    mask_mode : {"ste", "anchor"}
        Gradient path to the masks, see the module docstring.
    ste_temperature : float
        τ multiplier of the straight-through surrogate.
    compete : bool
        Centre each unit's scores over the groups before the top-k (module docstring).
    explore_noise : float
        Scale of the Gumbel noise on the scores in training, in units of the score spread
        (module docstring); 0 turns it off.
    """

    def __init__(
        self,
        feature_dim: int,
        *,
        n_groups: int,
        keep_fraction: float,
        n_heads: int,
        scale: float,
        mask_mode: str,
        ste_temperature: float,
        compete: bool,
        explore_noise: float,
    ) -> None:
        # No defaults here: SOPConfig holds them, once.
        super().__init__()
        if mask_mode not in MASK_MODES:
            raise ValueError(f"mask_mode: expected one of {MASK_MODES}, got {mask_mode!r}")
        if not 0.0 < keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction: expected a value in (0, 1], got {keep_fraction}")
        self.n_groups, self.keep_fraction, self.n_heads = n_groups, keep_fraction, n_heads
        self.scale, self.mask_mode, self.ste_temperature = scale, mask_mode, ste_temperature
        if explore_noise < 0 or (explore_noise > 0 and mask_mode != "ste"):
            raise ValueError(
                f"explore_noise: expected ≥ 0, and 0 unless mask_mode is 'ste'; got {explore_noise}"
            )
        self.compete, self.explore_noise = compete, explore_noise
        self.head_dim = max(1, math.ceil(feature_dim / n_heads))
        inner = self.head_dim * n_heads
        self.norm = nn.LayerNorm(feature_dim)
        # With competition a query bias adds the same score to every group: it would cancel.
        self.query = nn.Linear(feature_dim, inner, bias=not compete)
        self.key = nn.Linear(feature_dim, inner)
        # Distinct learned offsets keep groups with similar anchors apart.
        self.group_embed = nn.Parameter(torch.randn(n_groups, inner) / math.sqrt(inner))

    def anchors(self, n_valid: Tensor) -> Tensor:
        """Anchor unit per group: evenly spaced over each row's valid units, (B, G)."""
        frac = (torch.arange(self.n_groups, device=n_valid.device) + 0.5) / self.n_groups
        return (frac * n_valid.unsqueeze(-1)).long().clamp_max(n_valid.unsqueeze(-1) - 1)

    def forward(self, features: Tensor, unit_valid: Tensor | None = None) -> GeneratedGroups:
        """Masks for unit features (B, N, D); ``unit_valid`` (B, N) marks non-padding units."""
        b, n, _ = features.shape
        if unit_valid is None:
            unit_valid = features.new_ones(b, n, dtype=torch.bool)
        unit_valid = unit_valid.bool()
        n_valid = unit_valid.sum(-1)  # (B,)
        h = self.norm(features)
        idx = self.anchors(n_valid)  # (B, G)
        anchor_feats = h.gather(1, idx.unsqueeze(-1).expand(-1, -1, h.shape[-1]))  # (B, G, D)
        q = (self.query(anchor_feats) + self.group_embed).view(b, self.n_groups, self.n_heads, -1)
        k = self.key(h).view(b, n, self.n_heads, -1)
        scores = torch.einsum("bghd,bnhd->bgn", q, k) / (self.n_heads * math.sqrt(self.head_dim))
        if self.compete and self.n_groups > 1:
            scores = scores - scores.mean(1, keepdim=True)  # (B, G, N): groups compete per unit
        scores = (self.scale * scores).masked_fill(~unit_valid.unsqueeze(1), float("-inf"))
        clean = scores
        if self.training and self.explore_noise > 0:
            # Gumbel(0, 1) = −log(−log U); scaled by each row's spread so the rate is scale-free.
            u = torch.rand_like(scores).clamp(1e-9, 1 - 1e-9)
            spread = _masked_std(scores.masked_fill(~unit_valid.unsqueeze(1), 0.0), unit_valid)
            noise = -torch.log(-torch.log(u)) * (self.explore_noise * spread.detach()).unsqueeze(-1)
            scores = scores + noise

        n_keep = torch.ceil(self.keep_fraction * n_valid).long().clamp(min=1)  # (B,)
        n_keep = torch.minimum(n_keep, n_valid).view(b, 1).expand(b, self.n_groups)
        hard = topk_rank_mask(scores, n_keep)

        if self.mask_mode == "anchor":
            probs = torch.softmax(scores, dim=-1)
            gate = (probs * hard).sum(-1) - (probs * (1 - hard)).sum(-1)
            return GeneratedGroups(hard.detach(), scores, gate)

        # Straight-through surrogate around the keep threshold.
        finite = scores.masked_fill(~unit_valid.unsqueeze(1), 0.0).detach()
        sorted_s = torch.sort(scores.detach(), -1, descending=True)[0]  # invalid units: -inf, last
        last_kept = sorted_s.gather(-1, (n_keep - 1).unsqueeze(-1))
        first_out = sorted_s.gather(-1, n_keep.clamp_max(n - 1).unsqueeze(-1))
        first_out = torch.where(n_keep.unsqueeze(-1) >= n_valid.view(b, 1, 1), last_kept, first_out)
        threshold = 0.5 * (last_kept + first_out)
        spread = _masked_std(finite, unit_valid).clamp_min(1e-6).unsqueeze(-1)
        soft = torch.sigmoid((scores - threshold) / (self.ste_temperature * spread))
        soft = soft.masked_fill(~unit_valid.unsqueeze(1), 0.0)
        masks = hard + (soft - soft.detach())  # exactly `hard` in the forward pass
        return GeneratedGroups(masks, clean, None)


def _masked_std(x: Tensor, valid: Tensor) -> Tensor:
    """Std over the last axis of (B, G, N) restricted to valid units (B, N)."""
    w = valid.unsqueeze(1).to(x.dtype)
    count = w.sum(-1).clamp_min(1.0)
    mean = (x * w).sum(-1) / count
    return (((x - mean.unsqueeze(-1)) ** 2 * w).sum(-1) / count).sqrt()
