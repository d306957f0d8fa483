"""Post-hoc attribution baselines on an image model, and their reduction to a patch grid.

Every method explains one output column (``target``) of the same model (a callable mapping
images ``(n, C, H, W)`` to outputs ``(n, K)``: class logits or regression predictions) and
returns an attribution of the input's shape. :func:`patch_scores` then reduces any attribution
to one score per patch of a square grid in one fixed way (the sum of ``|attr|`` over the patch),
and :func:`keep_top_patches` keeps the ⌈k·U⌉ best patches; these two steps turn every method
into a "-F" explanation (a single kept mask) the same way. See ``docs/baselines.md``.

Methods (:data:`METHODS`):

``integrated_gradients``
    captum ``IntegratedGradients`` from a constant baseline image.
``kernel_shap``, ``lime``
    captum ``KernelShap`` and ``Lime`` over the patch grid (``feature_mask``); Lime fits
    captum's scikit-learn ridge, since its default Lasso zeroes most patches and leaves ties.
``layer_gradcam``
    captum ``LayerGradCam`` on a given convolutional layer, interpolated to the input size.
``rise``
    RISE (Petsiuk et al. 2018), written here: random low-resolution binary masks, upsampled
    bilinearly with a random shift; the saliency of a pixel is ``Σ_i M_i f(x ⊙ M_i) / Σ_i M_i``
    minus the mean output over all masks (the shift makes ``|saliency|`` meaningful for
    regression and leaves the ranking of the signed saliency unchanged).
``occlusion``
    captum ``Occlusion`` with patch-sized windows and strides (one window per grid patch).
``random``
    A seeded random score per patch (the floor every method should beat).

captum 0.9.0 notes: KernelShap and Lime need scikit-learn, which captum does not declare;
groups go in as an integer ``feature_mask`` of shape (1, 1, H, W); multi-output regression is
explained one column at a time with ``target=``; ``perturbations_per_eval`` defaults to 1 (one
model call per sample), so it is raised here to ``batch_size``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "METHODS",
    "attribute",
    "keep_top_patches",
    "patch_feature_mask",
    "patch_scores",
    "rise_saliency",
]

METHODS: tuple[str, ...] = (
    "integrated_gradients",
    "kernel_shap",
    "lime",
    "layer_gradcam",
    "rise",
    "occlusion",
    "random",
)

Forward = Callable[[Tensor], Tensor]


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


def rise_saliency(
    forward: Forward,
    x: Tensor,
    *,
    n_masks: int = 200,
    cell_size: int = 8,
    p_keep: float = 0.5,
    baseline: float = 0.0,
    seed: int = 0,
    batch_size: int = 64,
) -> Tensor:
    """RISE saliency of every output column, from one set of random masks.

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


def attribute(
    method: str,
    forward: Forward,
    x: Tensor,
    target: int,
    *,
    patch_size: int,
    layer: nn.Module | None = None,
    n_samples: int = 200,
    ig_steps: int = 50,
    baseline: float = 0.0,
    seed: int = 0,
    batch_size: int = 64,
    interpolate_mode: str = "bilinear",
) -> Tensor:
    """Attribution (same shape as ``x``) of one image for output column ``target``.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    forward : callable
        Images (n, C, H, W) -> outputs (n, K); the model in eval mode.
    x : Tensor
        One image (C, H, W).
    target : int
        Output column to explain (a class, or a regression parameter).
    patch_size : int
        Side of the grid patches: KernelShap/Lime features, Occlusion windows, RISE cells and
        the random scores all live on this grid.
    layer : nn.Module, optional
        Layer for LayerGradCam (the last convolution of a CNN, a ViT's patch embedding).
    n_samples : int
        Samples of KernelShap, Lime and RISE.
    ig_steps : int
        Integration steps of IntegratedGradients.
    baseline : float
        Reference value of a hidden pixel, the same one the metrics and "-F" masks use.
    seed : int
        Seed of the sampling methods.
    batch_size : int
        Perturbed images per model call.
    interpolate_mode : str
        How LayerGradCam's map is resized to the input ("bilinear", "nearest", ...).

    Returns
    -------
    Tensor
        Detached attribution of ``x``'s shape.
    """
    from captum.attr import (
        IntegratedGradients,
        KernelShap,
        LayerAttribution,
        LayerGradCam,
        Lime,
        Occlusion,
    )

    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if x.dim() != 3:
        raise ValueError(f"x: expected one image (C, H, W), got shape {tuple(x.shape)}")
    inp = x.detach().unsqueeze(0)
    size = (int(x.shape[-2]), int(x.shape[-1]))
    fmask = patch_feature_mask(size, patch_size).unsqueeze(0).to(x.device)  # (1, 1, H, W)
    per_eval = max(1, min(batch_size, n_samples))
    # captum draws KernelShap/Lime samples from the global RNG: seed it, and restore it after
    # (manual_seed also seeds the GPU generators, so the input's GPU is restored too).
    gpus: list[int] = []
    if x.is_cuda:
        gpus = [torch.cuda.current_device() if x.device.index is None else x.device.index]
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(seed)
        if method == "integrated_gradients":
            attr = IntegratedGradients(forward).attribute(
                inp,
                baselines=baseline,
                target=target,
                n_steps=ig_steps,
                internal_batch_size=batch_size,
            )
        elif method in ("kernel_shap", "lime"):
            if method == "kernel_shap":
                explainer = KernelShap(forward)
            else:
                from captum._utils.models.linear_model import SkLearnRidge

                explainer = Lime(forward, interpretable_model=SkLearnRidge(alpha=1.0))
            attr = explainer.attribute(
                inp,
                baselines=baseline,
                target=target,
                feature_mask=fmask,
                n_samples=n_samples,
                perturbations_per_eval=per_eval,
            )
        elif method == "layer_gradcam":
            if layer is None:
                raise ValueError("layer: LayerGradCam needs a convolutional/patch-embedding layer")
            cam = LayerGradCam(forward, layer).attribute(inp, target=target)  # (1, 1, h, w)
            attr = LayerAttribution.interpolate(cam, size, interpolate_mode=interpolate_mode)
            attr = attr.expand_as(inp)
        elif method == "rise":
            sal = rise_saliency(
                forward,
                x.detach(),
                n_masks=n_samples,
                cell_size=patch_size,
                baseline=baseline,
                seed=seed,
                batch_size=batch_size,
            )
            attr = sal[target].expand_as(inp)
        elif method == "occlusion":
            attr = _occlusion(Occlusion, forward, inp, target, patch_size, baseline, batch_size)
        else:  # random
            gen = torch.Generator().manual_seed(seed)
            grid = torch.rand(int(fmask.max()) + 1, generator=gen).to(x.device)
            attr = grid[fmask].expand_as(inp)
    return attr.detach()[0].reshape(x.shape)


def _occlusion(
    occlusion_cls: type,
    forward: Forward,
    inp: Tensor,
    target: int,
    patch: int,
    baseline: float,
    batch_size: int,
) -> Tensor:
    """captum Occlusion with one window per grid patch, cut patches included.

    The image is padded with the baseline to whole patches (the padding is cropped again before
    the model sees it), so every window is exactly one grid patch.
    """
    _, c, h, w = inp.shape
    ph, pw = -(-h // patch) * patch - h, -(-w // patch) * patch - w
    padded = F.pad(inp, (0, pw, 0, ph), value=float(baseline))

    def cropped(z: Tensor) -> Tensor:
        return forward(z[..., :h, :w])

    n_windows = (padded.shape[-2] // patch) * (padded.shape[-1] // patch)
    attr = occlusion_cls(cropped).attribute(
        padded,
        sliding_window_shapes=(c, patch, patch),
        strides=(c, patch, patch),
        baselines=baseline,
        target=target,
        perturbations_per_eval=max(1, min(batch_size, n_windows)),
    )
    return attr[..., :h, :w]
