"""RISE (Petsiuk et al. 2018), written here: randomised input sampling for explanation.

Used by :class:`sop_cosmo.attribution.baselines.RiseF`; see ``docs/baselines.md``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["rise_saliency"]


def rise_saliency(
    forward: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    n_masks: int,
    cell_size: int = 8,
    p_keep: float = 0.5,
    baseline: float = 0.0,
    seed: int = 0,
    batch_size: int = 64,
) -> Tensor:
    """RISE saliency of every output column, from one set of random masks.

    Random low-resolution binary masks, upsampled bilinearly with a random shift; the saliency
    of a pixel is ``Σ_i M_i f(x ⊙ M_i) / Σ_i M_i`` minus the mean output over all masks (the
    shift makes ``|saliency|`` meaningful for regression and leaves the ranking of the signed
    saliency unchanged).

    Parameters
    ----------
    forward : callable
        Images (n, C, H, W) -> outputs (n, K).
    x : Tensor
        One image (C, H, W).
    n_masks : int
        Number of random masks (model calls).
    cell_size : int
        Side in pixels of a cell of the low-resolution mask grid.
    p_keep : float
        Probability that a cell is kept.
    baseline : float
        Value of hidden pixels: the masked input is ``x·M + (1 − M)·baseline``.
    seed : int
        Seed of the masks (a private generator; the global RNG is untouched).
    batch_size : int
        Masked images per model call.

    Returns
    -------
    Tensor
        (K, H, W) saliency: ``Σ_i M_i f_k(x_i) / Σ_i M_i − mean_i f_k(x_i)`` per pixel.
    """
    if n_masks < 1 or cell_size < 1 or not 0.0 < p_keep < 1.0:
        raise ValueError(
            f"n_masks, cell_size, p_keep: expected n_masks ≥ 1, cell_size ≥ 1, 0 < p_keep < 1; "
            f"got {n_masks}, {cell_size}, {p_keep}"
        )
    h, w = x.shape[-2:]
    gh, gw = -(-h // cell_size), -(-w // cell_size)
    gen = torch.Generator().manual_seed(seed)
    # One extra cell so that a random shift within a cell still covers the image.
    cells = (torch.rand(n_masks, 1, gh + 1, gw + 1, generator=gen) < p_keep).float()
    up = F.interpolate(
        cells,
        size=((gh + 1) * cell_size, (gw + 1) * cell_size),
        mode="bilinear",
        align_corners=False,
    )
    dy = torch.randint(0, cell_size, (n_masks,), generator=gen)
    dx = torch.randint(0, cell_size, (n_masks,), generator=gen)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, :, None]  # (n, H, 1)
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, :]  # (n, 1, W)
    masks = up[torch.arange(n_masks)[:, None, None], 0, rows, cols].to(x.device, x.dtype)

    outs = []
    with torch.no_grad():
        for s in range(0, n_masks, batch_size):
            m = masks[s : s + batch_size, None]  # (b, 1, H, W), shared over channels
            outs.append(forward(x.unsqueeze(0) * m + (1.0 - m) * baseline).detach())
    out = torch.cat(outs).to(torch.float64)  # (n, K)
    m64 = masks.to(torch.float64)
    weighted = torch.einsum("nk,nhw->khw", out, m64)
    cover = m64.sum(0).clamp_min(1e-12)
    return (weighted / cover - out.mean(0)[:, None, None]).to(x.dtype)
