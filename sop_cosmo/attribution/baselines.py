"""Post-hoc attribution baselines on an image model, in captum's shape.

One small class per method, each built on the model (``forward``: images ``(n, C, H, W)`` →
outputs ``(n, K)``, class logits or regression predictions) and its own settings, each with
``.attribute(inputs, target=..., patch_size=..., baseline=..., seed=...)`` returning a detached
attribution of the input's shape for output column ``target``. :data:`METHODS` is the one
registry, name → class. A comparison that runs several methods alike builds each one with
:meth:`PosthocMethod.from_settings`::

    explainer = METHODS["kernel_shap"].from_settings(forward, n_samples=200, n_steps=50)
    attr = explainer.attribute(x, target=1, patch_size=6, baseline=0.0, seed=3)

The patch grid helpers of :mod:`.patch_grid` then reduce any attribution to one score per
patch (``patch_scores``) and keep the ⌈k·U⌉ best patches (``keep_top_patches``): these two
steps turn every method into a "-F" explanation the same way. See ``docs/baselines.md``.

Methods (:data:`METHODS`):

``integrated_gradients`` (:class:`IntegratedGradientsF`)
    captum ``IntegratedGradients`` from a constant baseline image.
``kernel_shap``, ``lime`` (:class:`KernelShapF`, :class:`LimeF`)
    captum ``KernelShap`` and ``Lime`` over the patch grid (``feature_mask``); Lime fits
    captum's scikit-learn ridge, since its default Lasso zeroes most patches and leaves ties.
``layer_gradcam`` (:class:`LayerGradCamF`)
    captum ``LayerGradCam`` on a given convolutional layer, interpolated to the input size.
``rise`` (:class:`RiseF`)
    RISE (Petsiuk et al. 2018), written here (:func:`.rise.rise_saliency`).
``occlusion`` (:class:`OcclusionF`)
    captum ``Occlusion`` with patch-sized windows and strides (one window per grid patch).
``random`` (:class:`RandomF`)
    A seeded random score per patch (the floor every method should beat).

Every ``.attribute`` runs under a forked global RNG seeded with ``seed`` (captum draws the
KernelShap/Lime samples from it), so the caller's RNG does not move.

captum 0.9.0 notes: KernelShap and Lime need scikit-learn, which captum does not declare;
groups go in as an integer ``feature_mask`` of shape (1, 1, H, W); multi-output regression is
explained one column at a time with ``target=``; ``perturbations_per_eval`` defaults to 1 (one
model call per sample), so it is raised here to ``batch_size``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .patch_grid import patch_feature_mask
from .rise import rise_saliency

__all__ = [
    "METHODS",
    "IntegratedGradientsF",
    "KernelShapF",
    "LayerGradCamF",
    "LimeF",
    "OcclusionF",
    "PosthocMethod",
    "RandomF",
    "RiseF",
]

Forward = Callable[[Tensor], Tensor]

#: Perturbed images per model call, unless a method is given another ``batch_size``.
_BATCH_SIZE = 64


class _Call(NamedTuple):
    """One ``.attribute`` call, as a method's :meth:`PosthocMethod._attribute` receives it."""

    inp: Tensor  # (1, C, H, W), detached
    target: int
    fmask: Tensor  # (1, 1, H, W) patch ids (captum's feature_mask)
    patch: int
    baseline: float
    seed: int


class PosthocMethod:
    """Base of the post-hoc methods: explains one output column of ``forward`` on one image.

    A subclass sets :attr:`name`, takes its own settings in ``__init__`` (keyword-only, after
    ``forward``) and implements :meth:`_attribute`.
    """

    #: The method's key in :data:`METHODS`.
    name: ClassVar[str]

    def __init__(self, forward: Forward, *, batch_size: int = _BATCH_SIZE) -> None:
        self.forward = forward
        self.batch_size = int(batch_size)

    @classmethod
    def from_settings(cls, forward: Forward, **settings: Any) -> PosthocMethod:
        """Build from the settings of a comparison that runs several methods alike.

        The method takes the settings its ``__init__`` names and ignores the others (IG takes
        ``n_steps``, the sampling methods ``n_samples``, LayerGradCam ``layer`` and
        ``interpolate_mode``, all ``batch_size``). A setting no method takes is a ValueError.
        """
        unknown = sorted(set(settings) - _SETTINGS)
        if unknown:
            raise ValueError(f"settings: unknown {unknown}; known: {sorted(_SETTINGS)}")
        own = inspect.signature(cls.__init__).parameters
        return cls(forward, **{k: v for k, v in settings.items() if k in own})

    def attribute(
        self, inputs: Tensor, target: int, *, patch_size: int, baseline: float = 0.0, seed: int = 0
    ) -> Tensor:
        """Attribution (same shape as ``inputs``) of one image for output column ``target``.

        Parameters
        ----------
        inputs : Tensor
            One image (C, H, W).
        target : int
            Output column to explain (a class, or a regression parameter).
        patch_size : int
            Side of the grid patches: KernelShap/Lime features, Occlusion windows, RISE cells
            and the random scores all live on this grid.
        baseline : float
            Reference value of a hidden pixel, the same one the metrics and "-F" masks use.
        seed : int
            Seed of the sampling methods.

        Returns
        -------
        Tensor
            Detached attribution of ``inputs``' shape.
        """
        x = inputs
        if x.dim() != 3:
            raise ValueError(f"x: expected one image (C, H, W), got shape {tuple(x.shape)}")
        fmask = patch_feature_mask(tuple(x.shape[-2:]), patch_size).unsqueeze(0).to(x.device)
        call = _Call(x.detach().unsqueeze(0), int(target), fmask, int(patch_size), baseline, seed)
        # captum draws KernelShap/Lime samples from the global RNG: seed it, and restore it after
        # (manual_seed also seeds the GPU generators, so the input's GPU is restored too).
        gpus: list[int] = []
        if x.is_cuda:
            gpus = [torch.cuda.current_device() if x.device.index is None else x.device.index]
        with torch.random.fork_rng(devices=gpus):
            torch.manual_seed(seed)
            attr = self._attribute(call)
        return attr.detach()[0].reshape(x.shape)

    def _attribute(self, c: _Call) -> Tensor:
        """(1, C, H, W) attribution of ``c.inp``."""
        raise NotImplementedError

    def _per_eval(self, n: int) -> int:
        return max(1, min(self.batch_size, n))


class IntegratedGradientsF(PosthocMethod):
    """captum ``IntegratedGradients`` from the constant ``baseline`` image, ``n_steps`` steps."""

    name = "integrated_gradients"

    def __init__(self, forward: Forward, *, n_steps: int, batch_size: int = _BATCH_SIZE) -> None:
        super().__init__(forward, batch_size=batch_size)
        self.n_steps = int(n_steps)

    def _attribute(self, c: _Call) -> Tensor:
        from captum.attr import IntegratedGradients

        return IntegratedGradients(self.forward).attribute(
            c.inp,
            baselines=c.baseline,
            target=c.target,
            n_steps=self.n_steps,
            internal_batch_size=self.batch_size,
        )


class KernelShapF(PosthocMethod):
    """captum ``KernelShap`` over the patch grid, from ``n_samples`` coalitions."""

    name = "kernel_shap"

    def __init__(self, forward: Forward, *, n_samples: int, batch_size: int = _BATCH_SIZE) -> None:
        super().__init__(forward, batch_size=batch_size)
        self.n_samples = int(n_samples)

    def _explainer(self) -> Any:
        from captum.attr import KernelShap

        return KernelShap(self.forward)

    def _attribute(self, c: _Call) -> Tensor:
        return self._explainer().attribute(
            c.inp,
            baselines=c.baseline,
            target=c.target,
            feature_mask=c.fmask,
            n_samples=self.n_samples,
            perturbations_per_eval=self._per_eval(self.n_samples),
        )


class LimeF(KernelShapF):
    """captum ``Lime`` over the patch grid with a ridge surrogate (``SkLearnRidge(alpha=1)``)."""

    name = "lime"

    def _explainer(self) -> Any:
        from captum._utils.models.linear_model import SkLearnRidge
        from captum.attr import Lime

        return Lime(self.forward, interpretable_model=SkLearnRidge(alpha=1.0))


class LayerGradCamF(PosthocMethod):
    """captum ``LayerGradCam`` on ``layer``, resized to the input with ``interpolate_mode``.

    ``layer`` is the last convolution of a CNN, or a ViT's patch embedding (whose grid is the
    patch grid: ``interpolate_mode="nearest"``).
    """

    name = "layer_gradcam"

    def __init__(
        self,
        forward: Forward,
        *,
        layer: nn.Module | None = None,
        interpolate_mode: str = "bilinear",
        batch_size: int = _BATCH_SIZE,
    ) -> None:
        if layer is None:
            raise ValueError("layer: LayerGradCam needs a convolutional/patch-embedding layer")
        super().__init__(forward, batch_size=batch_size)
        self.layer = layer
        self.interpolate_mode = interpolate_mode

    def _attribute(self, c: _Call) -> Tensor:
        from captum.attr import LayerAttribution, LayerGradCam

        cam = LayerGradCam(self.forward, self.layer).attribute(c.inp, target=c.target)
        size = tuple(c.inp.shape[-2:])  # cam is (1, 1, h, w)
        attr = LayerAttribution.interpolate(cam, size, interpolate_mode=self.interpolate_mode)
        return attr.expand_as(c.inp)


class RiseF(PosthocMethod):
    """RISE saliency (:func:`rise_saliency`) from ``n_samples`` masks with patch-sized cells."""

    name = "rise"

    def __init__(self, forward: Forward, *, n_samples: int, batch_size: int = _BATCH_SIZE) -> None:
        super().__init__(forward, batch_size=batch_size)
        self.n_samples = int(n_samples)

    def _attribute(self, c: _Call) -> Tensor:
        sal = rise_saliency(
            self.forward,
            c.inp[0],
            n_masks=self.n_samples,
            cell_size=c.patch,
            baseline=c.baseline,
            seed=c.seed,
            batch_size=self.batch_size,
        )
        return sal[c.target].expand_as(c.inp)


class OcclusionF(PosthocMethod):
    """captum ``Occlusion`` with one window per grid patch, cut patches included.

    The image is padded with the baseline to whole patches (the padding is cropped again
    before the model sees it), so every window is exactly one grid patch.
    """

    name = "occlusion"

    def _attribute(self, c: _Call) -> Tensor:
        from captum.attr import Occlusion

        _, ch, h, w = c.inp.shape
        p = c.patch
        ph, pw = -(-h // p) * p - h, -(-w // p) * p - w
        padded = F.pad(c.inp, (0, pw, 0, ph), value=float(c.baseline))

        def cropped(z: Tensor) -> Tensor:
            return self.forward(z[..., :h, :w])

        n_windows = (padded.shape[-2] // p) * (padded.shape[-1] // p)
        attr = Occlusion(cropped).attribute(
            padded,
            sliding_window_shapes=(ch, p, p),
            strides=(ch, p, p),
            baselines=c.baseline,
            target=c.target,
            perturbations_per_eval=self._per_eval(n_windows),
        )
        return attr[..., :h, :w]


class RandomF(PosthocMethod):
    """A seeded random score per grid patch (independent of the model and the target)."""

    name = "random"

    def _attribute(self, c: _Call) -> Tensor:
        gen = torch.Generator().manual_seed(c.seed)
        grid = torch.rand(int(c.fmask.max()) + 1, generator=gen).to(c.inp.device)
        return grid[c.fmask].expand_as(c.inp)


class _Registry(dict[str, type[PosthocMethod]]):
    """name → method class; an unknown name is a ValueError that lists the known ones."""

    def __missing__(self, name: str) -> type[PosthocMethod]:
        raise ValueError(f"method: expected one of {tuple(self)}, got {name!r}")


#: The post-hoc methods, name → class, in the order of the comparison tables.
METHODS: dict[str, type[PosthocMethod]] = _Registry(
    (cls.name, cls)
    for cls in (
        IntegratedGradientsF,
        KernelShapF,
        LimeF,
        LayerGradCamF,
        RiseF,
        OcclusionF,
        RandomF,
    )
)

#: Every setting some method's constructor takes (what :meth:`PosthocMethod.from_settings` knows).
_SETTINGS: frozenset[str] = frozenset(
    name
    for cls in METHODS.values()
    for name, p in inspect.signature(cls.__init__).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
)
