"""How an SOP uses its groups: active groups, distinct masks and coverage, per batch.

Three numbers that tell a learning SOP from a collapsed one, cheap enough to log every epoch:

``active_groups``
    Groups with non-zero selector weight, averaged over inputs and outputs.
``distinct_masks``
    Different masks among the G groups of an input, averaged over inputs (1 when all groups
    collapsed onto one mask, G when they all differ); the empty groups that pad given
    segments are not counted.
``coverage``
    Fraction of an input's valid units that at least one group keeps, averaged over inputs
    (the keep fraction k when the groups collapsed, up to 1 when they tile the input).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from .model import SOPOutput

__all__ = ["DIAGNOSTICS", "group_diagnostics", "mean_group_diagnostics"]

DIAGNOSTICS: tuple[str, str, str] = ("active_groups", "distinct_masks", "coverage")


@torch.no_grad()
def group_diagnostics(output: SOPOutput, unit_valid: Tensor | None = None) -> dict[str, float]:
    """The three numbers of the module docstring for one batch.

    Parameters
    ----------
    output : SOPOutput
        A forward pass of ``B`` inputs.
    unit_valid : Tensor, optional
        (B, N) bool, False for padding units (not counted in the coverage).
    """
    masks = output.masks.flatten(2) > 0.5  # (B, G, N)
    b, _, n = masks.shape
    valid = torch.ones(b, n, dtype=torch.bool) if unit_valid is None else unit_valid.bool()
    valid = valid.to(masks.device)
    active = (output.weights > 0).sum(1).double().mean()
    real = output.group_valid  # None: every group is a candidate
    distinct = sum(
        torch.unique(masks[i] if real is None else masks[i][real[i]], dim=0).shape[0]
        for i in range(b)
    ) / max(1, b)
    covered = (masks.any(1) & valid).sum(1).double() / valid.sum(1).clamp_min(1).double()
    return {
        "active_groups": float(active),
        "distinct_masks": float(distinct),
        "coverage": float(covered.mean()),
    }


def mean_group_diagnostics(outputs: Iterable[SOPOutput]) -> dict[str, float]:
    """:func:`group_diagnostics` of several batches, averaged with each batch's size as weight."""
    rows = [(output.prediction.shape[0], group_diagnostics(output)) for output in outputs]
    n = sum(k for k, _ in rows)
    return {key: sum(k * r[key] for k, r in rows) / n for key in DIAGNOSTICS}
