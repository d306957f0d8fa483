"""Post-hoc captum baselines on an image backbone, all returning per-pixel attributions.

Every method explains the same backbone (a callable images -> logits) for one target class and
returns an attribution of the input's shape, so all of them — and SOP's groups — can be scored
by the one insertion/deletion rule of :mod:`sop_cosmo.attribution` over the same patch grid.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = ["BASELINE_METHODS", "patch_feature_mask", "posthoc_attribution"]

BASELINE_METHODS: tuple[str, ...] = (
    "integrated_gradients",
    "kernel_shap",
    "lime",
    "layer_gradcam",
    "random",
)


def patch_feature_mask(image_size: tuple[int, int], patch_size: int) -> Tensor:
    """(1, H, W) int64 patch ids, row-major over the ⌈H/p⌉×⌈W/p⌉ grid (captum's feature_mask)."""
    h, w = image_size
    gw = -(-w // patch_size)
    rows = torch.arange(h) // patch_size
    cols = torch.arange(w) // patch_size
    return (rows[:, None] * gw + cols[None, :]).unsqueeze(0)


def posthoc_attribution(
    method: str,
    forward: Callable[[Tensor], Tensor],
    x: Tensor,
    target: int,
    *,
    patch_size: int,
    layer: nn.Module | None = None,
    n_samples: int = 200,
    ig_steps: int = 32,
    baseline: float = 0.0,
    seed: int = 0,
) -> Tensor:
    """Per-pixel attribution (same shape as ``x``) of one image for class ``target``.

    Parameters
    ----------
    method : str
        One of :data:`BASELINE_METHODS`.
    forward : callable
        Images (n, C, H, W) -> logits (n, K); the model in eval mode.
    x : Tensor
        One image (C, H, W).
    target : int
        Class to explain.
    patch_size : int
        Patch side for KernelShap/Lime's feature mask (the units of the comparison).
    layer : nn.Module, optional
        Layer for LayerGradCam (e.g. the ViT patch-embedding convolution).
    n_samples : int
        Perturbation samples of KernelShap and Lime.
    ig_steps : int
        Integration steps of IntegratedGradients.
    baseline : float
        Reference value (masked pixels), the same as the metric's baseline.
    seed : int
        Seed of the sampling methods.
    """
    from captum.attr import IntegratedGradients, KernelShap, LayerAttribution, LayerGradCam, Lime

    inp = x.unsqueeze(0)
    fmask = patch_feature_mask(tuple(x.shape[-2:]), patch_size).unsqueeze(0)  # (1, 1, H, W)
    torch.manual_seed(seed)
    if method == "integrated_gradients":
        attr = IntegratedGradients(forward).attribute(
            inp, baselines=baseline, target=target, n_steps=ig_steps
        )
    elif method == "kernel_shap":
        attr = KernelShap(forward).attribute(
            inp, baselines=baseline, target=target, feature_mask=fmask, n_samples=n_samples
        )
    elif method == "lime":
        from captum._utils.models.linear_model import SkLearnRidge

        # Ridge rather than captum's default Lasso: Lasso zeroes most patches, leaving ties.
        lime = Lime(forward, interpretable_model=SkLearnRidge(alpha=1.0))
        attr = lime.attribute(
            inp, baselines=baseline, target=target, feature_mask=fmask, n_samples=n_samples
        )
    elif method == "layer_gradcam":
        if layer is None:
            raise ValueError("layer: LayerGradCam needs a convolutional/patch-embedding layer")
        cam = LayerGradCam(forward, layer).attribute(inp, target=target)  # (1, 1, h, w)
        attr = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="nearest")
        attr = attr.expand_as(inp)
    elif method == "random":
        gen = torch.Generator().manual_seed(seed)
        grid = torch.rand(int(fmask.max()) + 1, generator=gen)
        attr = grid[fmask].expand_as(inp)
    else:
        raise ValueError(f"method: expected one of {BASELINE_METHODS}, got {method!r}")
    return attr.detach()[0].reshape(x.shape)
