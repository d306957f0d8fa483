"""The patch grid every post-hoc method is reduced to: patch ids, patch scores, top-k masks.

:func:`patch_scores` reduces any attribution to one score per patch of a square grid in one
fixed way (the sum of ``|attr|`` over the patch), and :func:`keep_top_patches` keeps the ⌈k·U⌉
best patches; these two steps turn every method of :mod:`.baselines` into a "-F" explanation
(a single kept mask) the same way. See ``docs/baselines.md``.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["keep_top_patches", "patch_feature_mask", "patch_scores"]


def patch_feature_mask(image_size: tuple[int, int], patch_size: int) -> Tensor:
    """(1, H, W) int64 patch ids, row-major over the ⌈H/p⌉×⌈W/p⌉ grid (captum's feature_mask).

    The last row/column of patches may be cut, as in SOP's image grid.
    """
    if patch_size < 1:
        raise ValueError(f"patch_size: expected a positive integer, got {patch_size}")
    h, w = image_size
    gw = -(-w // patch_size)
    rows = torch.arange(h) // patch_size
    cols = torch.arange(w) // patch_size
    return (rows[:, None] * gw + cols[None, :]).unsqueeze(0)


def patch_scores(attribution: Tensor, feature_mask: Tensor) -> Tensor:
    """One score per patch: the sum of ``|attribution|`` over the patch's elements.

    Absolute values, because for regression a region that lowers the prediction matters as
    much as one that raises it; the same reduction is applied to every method.

    Parameters
    ----------
    attribution : Tensor
        (C, H, W) attribution of one input.
    feature_mask : Tensor
        Integer patch ids 0..U-1 broadcastable to the attribution, e.g. (1, H, W).

    Returns
    -------
    Tensor
        (U,) float64 patch scores.
    """
    attr = attribution.detach().abs().to(torch.float64)
    ids = feature_mask.to(attr.device).expand_as(attr).reshape(-1)
    n_units = int(ids.max()) + 1
    return torch.zeros(n_units, dtype=torch.float64, device=attr.device).index_add_(
        0, ids, attr.reshape(-1)
    )


def keep_top_patches(scores: Tensor, keep_fraction: float) -> Tensor:
    """Bool (U,) mask of the ⌈k·U⌉ highest scores (ties: the lower patch id first).

    The count is computed exactly as SOP's group generator computes it (⌈k·U⌉, in float32),
    so a "-F" mask keeps as many patches as one SOP group.
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction: expected a value in (0, 1], got {keep_fraction}")
    n_units = int(scores.shape[-1])
    n_keep = max(1, int(torch.ceil(keep_fraction * torch.tensor(n_units))))
    order = torch.sort(scores, descending=True, stable=True).indices
    keep = torch.zeros(n_units, dtype=torch.bool, device=scores.device)
    keep[order[:n_keep]] = True
    return keep
