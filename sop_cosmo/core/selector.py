"""Group selector: sparse cross-attention from one query per output to the G group keys.

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

__all__ = ["GroupSelector"]


class GroupSelector(nn.Module):
    """Sparsemax weights (B, G, C) over groups, one distribution per output.

    Parameters
    ----------
    pooled_dim : int
        Size E of the pooled group features.
    n_outputs : int
        Number of outputs C.
    scale : float
        Multiplier on the scores before sparsemax (larger: sparser selection).
    init_queries : Tensor, optional
        (C, E) initial queries, e.g. the backbone head's weight; random when None.
    """

    def __init__(
        self,
        pooled_dim: int,
        n_outputs: int,
        *,
        scale: float,
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
        self.scale = scale
        self.queries = nn.Parameter(init_queries.detach().clone().float())
        self.query_proj = nn.Linear(pooled_dim, pooled_dim, bias=False)
        self.key_proj = nn.Linear(pooled_dim, pooled_dim, bias=False)
        nn.init.eye_(self.query_proj.weight)
        nn.init.eye_(self.key_proj.weight)

    def forward(self, group_features: Tensor) -> Tensor:
        """Weights (B, G, C) for pooled group features (B, G, E); each column sums to 1."""
        keys = self.key_proj(group_features)  # (B, G, E)
        queries = self.query_proj(self.queries)  # (C, E)
        scores = self.scale * torch.einsum("bge,ce->bgc", keys, queries)
        return sparsemax(scores, dim=1)
