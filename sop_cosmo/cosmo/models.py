"""The three regressors of Ωm and σ8 (a CNN, SOP around that CNN, an MLP on statistics) and
their rebuild from a checkpoint (:func:`load_model`).

Every model maps *standardised* inputs to *standardised* targets, ``forward(x) -> (B, P)``:
κ patches (B, C, H, W) for ``cnn`` and ``sop``, summary statistics (B, F) for ``stats``.

The CNN is the anchor's convnet made general: per stage a k×k convolution, a LeakyReLU and a
2×2 max-pool, for each entry of ``widths`` (anchor: 16, 32, 48 with k = 4); then fully
connected layers ``hidden`` (anchor: 128, 64, 32) and a linear head. For 66×66 inputs the
flattened size is 48·5·5 = 1200, as in the anchor. ``widths`` sets depth and width; the
defaults (:class:`~sop_cosmo.cosmo.config.CNNOptions`) reproduce the anchor because it is the
published reference point.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from sop_cosmo.core import ImageBackbone, SOPConfig, SOPOutput, SumOfParts
from sop_cosmo.cosmo.config import (
    MODEL_KINDS,
    SOP_GENERATORS,
    CNNOptions,
    SOPOptions,
    StatsOptions,
    model_options,
)
from sop_cosmo.cosmo.contracts.checkpoint import Checkpoint, load_checkpoint
from sop_cosmo.cosmo.maths.segments import Segments, grid_segments
from sop_cosmo.cosmo.runtime import select_device

__all__ = [
    "MODEL_KINDS",
    "CNNRegressor",
    "SOPRegressor",
    "StatsMLP",
    "build_model",
    "load_model",
]


class CNNRegressor(nn.Module):
    """The anchor's convnet for C bins and any patch size.

    Parameters
    ----------
    in_channels : int
        Tomographic bins C.
    patch_size : int
        Input side H = W.
    n_outputs : int
        Targets P.
    widths : sequence of int
        Channels of the conv stages (one conv + LeakyReLU + max-pool each).
    kernel : int
        Convolution size.
    hidden : sequence of int
        Fully connected widths; the last is the pooled feature SOP's selector reads.
    mask_prob, mask_keep, mask_patch : float, float, int
        In training only: with probability ``mask_prob`` an input keeps a random fraction
        ``mask_keep`` of its ``mask_patch``-pixel grid cells and the rest is set to 0 (the
        standardised mean). This shows the backbone inputs like SOP's group inputs, which a
        frozen backbone otherwise never saw (docs/training.md). Off by default.
    """

    def __init__(
        self,
        in_channels: int,
        patch_size: int,
        n_outputs: int,
        *,
        widths: Sequence[int] = CNNOptions.widths,
        kernel: int = CNNOptions.kernel,
        hidden: Sequence[int] = CNNOptions.hidden,
        mask_prob: float = CNNOptions.mask_prob,
        mask_keep: float = CNNOptions.mask_keep,
        mask_patch: int = CNNOptions.mask_patch,
    ) -> None:
        super().__init__()
        if not 0.0 <= mask_prob <= 1.0 or not 0.0 < mask_keep <= 1.0 or mask_patch < 1:
            raise ValueError(
                "mask_prob, mask_keep, mask_patch: expected 0 ≤ mask_prob ≤ 1, "
                f"0 < mask_keep ≤ 1, mask_patch ≥ 1; got {mask_prob}, {mask_keep}, {mask_patch}"
            )
        self.mask_prob, self.mask_keep, self.mask_patch = mask_prob, mask_keep, mask_patch
        if not widths or not hidden:
            raise ValueError("widths, hidden: give at least one conv stage and one hidden layer")
        layers: list[nn.Module] = []
        size, channels = patch_size, in_channels
        #: Side of each conv stage's output map, and its channels.
        self.stage_sizes: list[int] = []
        self.stage_widths: list[int] = list(widths)
        for w in widths:
            size = (size - kernel + 1) // 2
            self.stage_sizes.append(size)
            if size < 1:
                raise ValueError(
                    f"patch_size: {patch_size} px is too small for {len(widths)} conv stages "
                    f"of kernel {kernel}; use fewer widths or larger patches"
                )
            layers += [nn.Conv2d(channels, w, kernel), nn.LeakyReLU(), nn.MaxPool2d(2)]
            channels = w
        self.trunk = nn.Sequential(*layers)  # (B, C, H, W) -> (B, widths[-1], s, s)
        fc: list[nn.Module] = [nn.Flatten()]
        width = channels * size * size  # 48·5·5 = 1200 for the anchor on 66×66
        for h in hidden:
            fc += [nn.Linear(width, h), nn.LeakyReLU()]
            width = h
        self.fc = nn.Sequential(*fc)
        self.head = nn.Linear(width, n_outputs)
        self.in_channels, self.patch_size, self.n_outputs = in_channels, patch_size, n_outputs
        self.feature_dim, self.pooled_dim = channels, width

    def encode(self, x: Tensor) -> Tensor:
        """Pooled feature (B, hidden[-1])."""
        return self.fc(self.trunk(x))

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.mask_prob > 0:
            x = self._random_masks(x)
        return self.head(self.encode(x))

    def _random_masks(self, x: Tensor) -> Tensor:
        b, p = x.shape[0], self.mask_patch
        gh, gw = -(-x.shape[-2] // p), -(-x.shape[-1] // p)
        n_keep = max(1, round(self.mask_keep * gh * gw))
        # Random top-k cells per input, like SOP's groups; only for a mask_prob share of inputs.
        scores = torch.rand(b, gh * gw, device=x.device)
        keep = torch.zeros_like(scores).scatter_(1, scores.topk(n_keep, 1).indices, 1.0)
        apply = torch.rand(b, 1, device=x.device) < self.mask_prob
        cells = torch.where(apply, keep, torch.ones_like(keep)).view(b, 1, gh, gw)
        pixels = cells.repeat_interleave(p, -2).repeat_interleave(p, -1)
        return x * pixels[..., : x.shape[-2], : x.shape[-1]]


class _Encoder(nn.Module):
    # trunk + fc as one module, so ImageBackbone sees the CNN's own (shared) layers
    def __init__(self, cnn: CNNRegressor) -> None:
        super().__init__()
        self.trunk, self.fc = cnn.trunk, cnn.fc

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.trunk(x))


def generator_stage(cnn: CNNRegressor, attention_patch: int, stage: int | None = None) -> int:
    """The conv stage (1-based) whose feature map the group generator reads.

    ``None`` picks the deepest stage whose map is at least as fine as the mask grid, so every
    grid cell gets features of its own (the last stage is 1×1 on small patches: every cell
    would then see the same vector). A stage coarser than half the grid is refused.
    """
    grid = -(-cnn.patch_size // attention_patch)
    sizes = cnn.stage_sizes
    if stage is None:
        fine = [i + 1 for i, size in enumerate(sizes) if size >= grid]
        stage = fine[-1] if fine else 1
    if not 1 <= stage <= len(sizes):
        raise ValueError(
            f"feature_stage: expected 1 to {len(sizes)} (the CNN's stages), got {stage}"
        )
    if 2 * sizes[stage - 1] < grid:
        raise ValueError(
            f"feature_stage: stage {stage}'s feature map is {sizes[stage - 1]}×{sizes[stage - 1]}"
            f", coarser than half the {grid}×{grid} mask grid ({cnn.patch_size} px / "
            f"attention_patch {attention_patch}); choose an earlier stage or a larger "
            "attention_patch"
        )
    return stage


class SOPRegressor(nn.Module):
    """SOP around a trained :class:`CNNRegressor`; groups are masks over a patch grid.

    With ``generator="watershed"`` the candidate groups are not learned: every forward pass
    segments its input (:meth:`segments`, the peak and trough basins of bin ``segment_bin``
    smoothed by ``segment_smoothing`` pixels, on the attention grid; see
    :mod:`sop_cosmo.cosmo.maths.segments`) and SOP selects among the ``n_groups`` largest.
    The input is the standardised κ, which has the basins of ν = κ/σ_noise with the level at
    the bin's training mean. Group g is segment g, so ``segments(x).types[:, g]`` types it.

    Parameters
    ----------
    cnn : CNNRegressor
        The trained backbone (frozen unless ``freeze_backbone`` is False).
    attention_patch : int
        Side in pixels of the grouping patches (anchor: 6 px, an 11×11 grid on 66×66).
    generator : {"learned", "watershed"}
        Where the candidate groups come from.
    segment_bin, segment_smoothing : int, float
        Watershed only: the bin index segmented and the Gaussian σ in pixels.
    baseline : float
        Value of masked-out pixels in standardised units (0 = the per-bin mean).
    **sop_options
        Fields of :class:`~sop_cosmo.core.SOPConfig`.
    """

    def __init__(
        self,
        cnn: CNNRegressor,
        *,
        attention_patch: int = SOPOptions.attention_patch,
        baseline: float = SOPOptions.baseline,
        feature_stage: int | None = SOPOptions.feature_stage,
        generator: str = SOPOptions.generator,
        segment_bin: int = SOPOptions.segment_bin,
        segment_smoothing: float = SOPOptions.segment_smoothing,
        **sop_options: Any,
    ) -> None:
        super().__init__()
        if generator not in SOP_GENERATORS:
            raise ValueError(f"generator: expected one of {SOP_GENERATORS}, got {generator!r}")
        if not -cnn.in_channels <= segment_bin < cnn.in_channels:
            raise ValueError(
                f"segment_bin: expected a bin index from {-cnn.in_channels} to "
                f"{cnn.in_channels - 1} (the data has {cnn.in_channels} bins), got {segment_bin}"
            )
        if not segment_smoothing >= 0:
            raise ValueError(f"segment_smoothing: expected ≥ 0 pixels, got {segment_smoothing}")
        self.generator, self.attention_patch = generator, attention_patch
        self.segment_bin, self.segment_smoothing = segment_bin, segment_smoothing
        learned = generator == "learned"
        # Watershed groups need no unit features: no generator stage, no feature net.
        stage = generator_stage(cnn, attention_patch, feature_stage) if learned else None
        backbone = ImageBackbone(
            _Encoder(cnn),
            cnn.head,
            image_size=(cnn.patch_size, cnn.patch_size),
            patch_size=attention_patch,
            in_channels=cnn.in_channels,
            n_outputs=cnn.n_outputs,
            pooled_dim=cnn.pooled_dim,
            # The trunk up to that stage: its layers are the CNN's own (frozen with it).
            feature_net=cnn.trunk[: 3 * stage] if stage else None,
            feature_dim=cnn.stage_widths[stage - 1] if stage else None,
            baseline=baseline,
        )
        self.feature_stage = stage
        config = SOPConfig(**sop_options, generator="learned" if learned else "segments")
        self.sop = SumOfParts(backbone, config)
        self.n_groups = self.sop.config.n_groups

    @torch.no_grad()
    def segments(self, x: Tensor) -> Segments:
        """Watershed segments of standardised maps (B, C, H, W) on the attention grid."""
        maps = x[:, self.segment_bin].detach().float().cpu().numpy()
        return grid_segments(maps, self.attention_patch, smoothing=self.segment_smoothing)

    def explain(self, x: Tensor) -> SOPOutput:
        """The full SOP output: prediction, masks, group outputs and weights."""
        if self.generator == "learned":
            return self.sop(x)
        ids = torch.from_numpy(self.segments(x).ids.reshape(len(x), -1))
        return self.sop(x, segments=ids.to(x.device, non_blocking=True))

    def forward(self, x: Tensor) -> Tensor:
        return self.explain(x).prediction


class StatsMLP(nn.Module):
    """A small MLP on standardised summary statistics (the classical baseline)."""

    def __init__(
        self,
        n_features: int,
        n_outputs: int,
        *,
        hidden: Sequence[int] = StatsOptions.hidden,
        dropout: float = StatsOptions.dropout,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(), nn.Dropout(dropout)]
            width = h
        layers.append(nn.Linear(width, n_outputs))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def build_model(
    kind: str,
    *,
    in_channels: int,
    patch_size: int,
    n_outputs: int,
    n_features: int | None = None,
    options: dict | None = None,
    backbone: nn.Module | None = None,
) -> nn.Module:
    """Build a model of ``kind`` ("cnn", "sop" or "stats").

    ``options`` override :func:`~sop_cosmo.cosmo.config.model_options`; unknown keys are an
    error naming them. "sop" needs ``backbone``, a trained :class:`CNNRegressor`; "stats" needs
    ``n_features``.
    """
    _check_kind(kind)
    known = model_options(kind)
    unknown = sorted(set(options or {}) - set(known))
    if unknown:
        raise ValueError(
            f"options: unknown keys {unknown} for model {kind!r}; known: {sorted(known)}"
        )
    opts = {**known, **(options or {})}
    if kind == "cnn":
        return CNNRegressor(in_channels, patch_size, n_outputs, **opts)
    if kind == "stats":
        if n_features is None:
            raise ValueError("n_features: the stats model needs the number of statistics")
        return StatsMLP(n_features, n_outputs, **opts)
    if not isinstance(backbone, CNNRegressor):
        raise ValueError(
            "backbone: the sop model wraps a trained cnn; pass --backbone RUN_CNN/model.pt"
        )
    if (backbone.in_channels, backbone.patch_size, backbone.n_outputs) != (
        in_channels, patch_size, n_outputs,
    ):  # fmt: skip
        raise ValueError(
            f"backbone: built for (bins, patch, outputs) = ({backbone.in_channels}, "
            f"{backbone.patch_size}, {backbone.n_outputs}), data has ({in_channels}, "
            f"{patch_size}, {n_outputs}); train the cnn on the same patch files"
        )
    return SOPRegressor(backbone, **opts)


def _check_kind(kind: str) -> None:
    if kind not in MODEL_KINDS:
        raise ValueError(f"model: expected one of {MODEL_KINDS}, got {kind!r}")


def _build(args: dict[str, Any], backbone_args: dict[str, Any] | None) -> nn.Module:
    backbone, options = None, dict(args["options"])
    if args["kind"] == "sop":
        if backbone_args is None:
            raise ValueError("checkpoint: a sop model needs 'backbone_args'")
        backbone = _build(backbone_args, None)
        # Checkpoints written before the option existed read the CNN's last stage.
        options.setdefault("feature_stage", len(backbone.stage_sizes))
    return build_model(
        args["kind"],
        in_channels=args["in_channels"],
        patch_size=args["patch_size"],
        n_outputs=args["n_outputs"],
        n_features=args["n_features"],
        options=options,
        backbone=backbone,
    )


def load_model(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    *,
    expect_kind: str | None = None,
    purpose: str = "this command",
) -> tuple[nn.Module, Checkpoint]:
    """Rebuild a model from ``model.pt`` (or ``last.pt``) and load its weights.

    A "sop" checkpoint carries its backbone's arguments and weights, so the original backbone
    file is not needed. The caller's RNG state is left untouched.

    Parameters
    ----------
    path : path-like
        A checkpoint written by ``sop-cosmo train``.
    device : str or torch.device
        Where to put the model (a name is resolved by
        :func:`~sop_cosmo.cosmo.runtime.select_device`).
    expect_kind, purpose : str, optional
        Refuse a checkpoint of another kind, naming ``purpose`` (as
        :func:`~sop_cosmo.cosmo.contracts.checkpoint.load_checkpoint`).

    Returns
    -------
    model : nn.Module
        In eval mode, on ``device``.
    checkpoint : Checkpoint
        The typed checkpoint (``.norm``, ``.kind``, ``.options``, ``.payload`` ...).
    """
    ckpt = load_checkpoint(path, expect_kind=expect_kind, purpose=purpose)
    if not isinstance(device, torch.device):
        device = select_device(device)
    # Building initialises weights from the global RNG; loading must not disturb the caller
    # (a training run loads its backbone after seeding).
    with torch.random.fork_rng(devices=[]):
        model = _build(ckpt.model_args, ckpt.backbone_args)
    model.load_state_dict(ckpt.model_state)
    return model.to(device).eval(), ckpt
