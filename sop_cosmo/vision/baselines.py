"""Post-hoc baselines for the vision demo: a thin layer over :mod:`sop_cosmo.attribution.baselines`.

Every method explains the same backbone (a callable images -> logits) for one target class and
returns an attribution of the input's shape, so all of them — and SOP's groups — can be scored
by the one insertion/deletion rule of :mod:`sop_cosmo.attribution` over the same patch grid.
:data:`BASELINE_METHODS` lists the methods the demo runs; :func:`posthoc_attribution` also
accepts the other methods of :data:`sop_cosmo.attribution.baselines.METHODS` ("rise",
"occlusion").
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from sop_cosmo.attribution.baselines import attribute, patch_feature_mask

__all__ = ["BASELINE_METHODS", "patch_feature_mask", "posthoc_attribution"]

BASELINE_METHODS: tuple[str, ...] = (
    "integrated_gradients",
    "kernel_shap",
    "lime",
    "layer_gradcam",
    "random",
)


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
        One of :data:`BASELINE_METHODS` (or "rise", "occlusion").
    forward : callable
        Images (n, C, H, W) -> logits (n, K); the model in eval mode.
    x : Tensor
        One image (C, H, W).
    target : int
        Class to explain.
    patch_size : int
        Patch side for KernelShap/Lime's feature mask (the units of the comparison).
    layer : nn.Module, optional
        Layer for LayerGradCam (e.g. the ViT patch-embedding convolution); its map is resized
        to the image by nearest neighbours, since a patch embedding's grid is the patch grid.
    n_samples : int
        Perturbation samples of KernelShap, Lime and RISE.
    ig_steps : int
        Integration steps of IntegratedGradients.
    baseline : float
        Reference value (masked pixels), the same as the metric's baseline.
    seed : int
        Seed of the sampling methods.
    """
    return attribute(
        method,
        forward,
        x,
        target,
        patch_size=patch_size,
        layer=layer,
        n_samples=n_samples,
        ig_steps=ig_steps,
        baseline=baseline,
        seed=seed,
        interpolate_mode="nearest",
    )
