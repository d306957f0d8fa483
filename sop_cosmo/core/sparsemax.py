"""Sparsemax (Martins & Astudillo 2016): a Euclidean projection onto the simplex.

We use the ``entmax`` package's implementation; this module pins the one place it is imported.
"""

from __future__ import annotations

from entmax import sparsemax as _entmax_sparsemax
from torch import Tensor

__all__ = ["sparsemax"]


def sparsemax(x: Tensor, dim: int = -1) -> Tensor:
    """Sparse probabilities along ``dim``: non-negative, summing to 1, often exactly 0."""
    return _entmax_sparsemax(x, dim=dim)
