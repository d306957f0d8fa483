"""Given segments as candidate groups: the second kind of group generator.

Instead of generating masks, the caller hands SOP a segmentation of each input's units
(``SOPConfig(generator="segments")``, ``forward(x, segments=...)``): a LongTensor (B, N) with
the segment id of every unit, −1 for units in no segment. :func:`segments_to_masks` turns it
into G candidate masks, and the selector picks among them as it picks among generated groups.

The rule, fixed so that a run is reproducible:

* the segments of an input are taken in **increasing id** (the ids need not be contiguous),
  and group g is the g-th of them; whoever numbers the segments sets their priority;
* segments beyond the first G are dropped (their units belong to no group);
* an input with fewer than G segments gets empty masks in the remaining groups, marked
  invalid; the selector gives them −∞ score before sparsemax, so their weight is exactly 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["segments_to_masks"]


def segments_to_masks(
    segments: Tensor, n_groups: int, unit_valid: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Candidate masks (B, G, N) and their validity (B, G) from segment ids (B, N).

    Parameters
    ----------
    segments : Tensor
        (B, N) integer segment id per unit; −1 (any negative id) means "in no segment".
    n_groups : int
        Number of groups G.
    unit_valid : Tensor, optional
        (B, N) bool, False for padding units: they belong to no segment.

    Returns
    -------
    masks : Tensor
        (B, G, N) float in {0, 1}: group g holds the units of the input's g-th smallest id.
    group_valid : Tensor
        (B, G) bool, False for the empty groups that pad an input with fewer than G segments.
    """
    if segments.dim() != 2 or segments.dtype.is_floating_point or segments.dtype == torch.bool:
        raise ValueError(
            f"segments: expected an integer tensor (B, N) of segment ids, got "
            f"{segments.dtype} of shape {tuple(segments.shape)}"
        )
    if n_groups < 1:
        raise ValueError(f"n_groups: expected at least 1 group, got {n_groups}")
    seg = segments.long()
    if unit_valid is not None:
        seg = seg.masked_fill(~unit_valid.bool(), -1)
    b, n = seg.shape
    inside = seg >= 0
    rows = torch.arange(b, device=seg.device).unsqueeze(1).expand(b, n)[inside]
    # Compress the ids to 0..K-1 keeping their order, then rank them within each row.
    _, cid = torch.unique(seg[inside], sorted=True, return_inverse=True)
    k = int(cid.max()) + 1 if cid.numel() else 1
    keys, pos = torch.unique(rows * k + cid, sorted=True, return_inverse=True)
    per_row = torch.bincount(keys // k, minlength=b)  # distinct segments of each input
    start = torch.cumsum(per_row, 0) - per_row
    rank = torch.full((b, n), -1, dtype=torch.long, device=seg.device)
    rank[inside] = pos - start[rows]
    groups = torch.arange(n_groups, device=seg.device)
    masks = (rank.unsqueeze(1) == groups.view(1, -1, 1)).to(torch.get_default_dtype())
    group_valid = groups.unsqueeze(0) < per_row.clamp(max=n_groups).unsqueeze(1)
    return masks, group_valid
