"""Sum-of-Parts: a self-attributing wrapper around any differentiable backbone.

    x ──> generator ──> masks m_g            (B, G, N)   G sparse groups of units
          (or given segments, SOPConfig.generator="segments": see core/segments.py)
    x ⊙ m_g ──> backbone ──> y_g, z_g        (B, G, C), (B, G, E)
    z_g ──> selector ──> w_g                 (B, G, C)   sparsemax over groups, per output
    ŷ = Σ_g w_g · y_g                        (B, C)      the prediction *is* the attribution

Because the prediction is computed as the weighted sum, ``(weights * group_outputs).sum(1)``
equals ``prediction`` exactly: the attribution is faithful by construction.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from .backbones import SOPBackbone
from .generator import GroupGenerator
from .segments import segments_to_masks
from .selector import GroupSelector

__all__ = ["GENERATORS", "SOPConfig", "SOPOutput", "SumOfParts"]

#: Kinds of group generator: learned masks, or segments given with each input.
GENERATORS: tuple[str, str] = ("learned", "segments")


@dataclass
class SOPConfig:
    """Hyper-parameters of :class:`SumOfParts`.

    Attributes
    ----------
    generator : {"learned", "segments"}
        Where the candidate groups come from: the attention generator (default), or segments
        given with each input, ``forward(x, segments=...)`` (:mod:`~sop_cosmo.core.segments`;
        then the generator's settings below are unused and there is no feature copy).
    n_groups : int
        Number of groups G (the anchor uses 20); with given segments, the most candidates.
    keep_fraction : float
        Fraction k of units each group keeps (the anchor uses 0.2).
    n_heads : int
        Attention heads of the generator (the anchor uses 4).
    group_gen_scale : float
        Multiplier on generator attention scores before the anchor gate's softmax; only
        ``mask_mode="anchor"`` uses it (top-k and the straight-through surrogate are
        scale-free, so any other value is refused in ``"ste"`` mode).
    group_sel_scale : float
        Multiplier on the raw selector scores; used only when ``active_groups`` is None.
    active_groups : int or None
        Groups with non-zero weight per input and output: the selector standardises its
        scores over the groups and picks the sparsemax temperature that keeps exactly this
        many (:func:`~sop_cosmo.core.selector.budget_sparsemax`). None: sparsemax of
        ``group_sel_scale`` × the raw scores, the anchor's rule.
    mask_mode : {"ste", "anchor"}
        Gradient path to the masks: straight-through (default) or the anchor's scalar gate,
        which multiplies each group's output in training and in evaluation alike.
    ste_temperature : float
        Width of the straight-through surrogate, in units of the score spread.
    compete : bool
        Groups compete for units: each unit's generator scores are centred over the groups
        before the top-k, which keeps the groups from collapsing onto one mask.
    explore_noise : float
        Gumbel noise on the generator scores in training, in units of their spread (0: off;
        ``"ste"`` mode only); lets units that help only together enter a group
        (:mod:`~sop_cosmo.core.generator`).
    freeze_backbone : bool
        Keep the backbone's weights fixed (and in eval mode). Default True.
    feature_copy : bool
        Give the generator its own trainable copy of the backbone for unit features (as the
        anchor does). When False it reads the backbone's own unit features.
    selector_init : {"head", "random"}
        Seed the selector queries with the backbone head's weight, or randomly.
    chunk_size : int
        Masked inputs per backbone call; bounds peak memory of the B×G evaluations.
    """

    generator: str = "learned"
    n_groups: int = 16
    keep_fraction: float = 0.2
    n_heads: int = 4
    group_gen_scale: float = 1.0
    group_sel_scale: float = 1.0
    active_groups: int | None = None
    mask_mode: str = "ste"
    ste_temperature: float = 1.0
    compete: bool = False
    explore_noise: float = 0.0
    freeze_backbone: bool = True
    feature_copy: bool = True
    selector_init: str = "head"
    chunk_size: int = 512

    def to_dict(self) -> dict:
        """Plain dict, for checkpoints and logs."""
        return asdict(self)


@dataclass
class SOPOutput:
    """What :meth:`SumOfParts.forward` returns.

    Attributes
    ----------
    prediction : Tensor
        (B, C), equal to ``(weights * group_outputs).sum(1)``.
    masks : Tensor
        (B, G, *unit_shape) binary group masks over units (patch grid or tokens).
    group_outputs : Tensor
        (B, G, C) backbone outputs on each masked input (times the anchor gate in "anchor" mode).
    weights : Tensor
        (B, G, C) selector weights; non-negative, summing to 1 over G.
    group_features : Tensor
        (B, G, E) pooled backbone features of each masked input.
    scores : Tensor
        (B, G, N) generator scores; for given segments 0 on a group's units and −∞ elsewhere.
    group_valid : Tensor or None
        (B, G) bool, False for the empty groups that pad given segments (weight 0); None for
        generated groups (all valid).
    """

    prediction: Tensor
    masks: Tensor
    group_outputs: Tensor
    weights: Tensor
    group_features: Tensor
    scores: Tensor = field(repr=False)
    group_valid: Tensor | None = field(default=None, repr=False)

    @property
    def contributions(self) -> Tensor:
        """(B, G, C) per-group contributions w·y; they sum over G to the prediction."""
        return self.weights * self.group_outputs


class SumOfParts(nn.Module):
    """Wrap ``backbone`` into a group-attributing model.

    Parameters
    ----------
    backbone : SOPBackbone
        An adapter from :mod:`sop_cosmo.core.backbones` (or any subclass of SOPBackbone).
    config : SOPConfig, optional
        Hyper-parameters; defaults to ``SOPConfig()``.
    """

    def __init__(self, backbone: SOPBackbone, config: SOPConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or SOPConfig()
        if cfg.generator not in GENERATORS:
            raise ValueError(f"generator: expected one of {GENERATORS}, got {cfg.generator!r}")
        if cfg.selector_init not in ("head", "random"):
            raise ValueError(
                f"selector_init: expected 'head' or 'random', got {cfg.selector_init!r}"
            )
        if cfg.mask_mode == "ste" and cfg.group_gen_scale != 1.0:
            raise ValueError(
                f"group_gen_scale: {cfg.group_gen_scale} has no effect with mask_mode 'ste' "
                "(top-k is scale-free); use ste_temperature, or mask_mode 'anchor'"
            )
        if cfg.chunk_size < 1:
            raise ValueError(f"chunk_size: expected a positive integer, got {cfg.chunk_size}")
        # The copy is the generator's and always trainable, even when the backbone handed in
        # was already frozen (e.g. by another SumOfParts built around it).
        learned = cfg.generator == "learned"
        self.feature_backbone = (
            copy.deepcopy(backbone).requires_grad_(True) if cfg.feature_copy and learned else None
        )
        self.backbone = backbone
        if cfg.freeze_backbone:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        self.generator = (
            GroupGenerator(
                backbone.feature_dim,
                n_groups=cfg.n_groups,
                keep_fraction=cfg.keep_fraction,
                n_heads=cfg.n_heads,
                scale=cfg.group_gen_scale,
                mask_mode=cfg.mask_mode,
                ste_temperature=cfg.ste_temperature,
                compete=cfg.compete,
                explore_noise=cfg.explore_noise,
            )
            if learned
            else None
        )
        head_w = backbone.head_weight() if cfg.selector_init == "head" else None
        self.selector = GroupSelector(
            backbone.pooled_dim,
            backbone.n_outputs,
            scale=cfg.group_sel_scale,
            active=cfg.active_groups,
            init_queries=head_w,
        )

    def train(self, mode: bool = True) -> SumOfParts:
        """Set train mode, keeping a frozen backbone in eval mode (fixed BatchNorm, no dropout)."""
        super().train(mode)
        if self.config.freeze_backbone:
            self.backbone.eval()
        return self

    def group_forward(self, x: Tensor, unit_masks: Tensor) -> tuple[Tensor, Tensor]:
        """Backbone outputs (B, G, C) and pooled features (B, G, E) for every group mask.

        All B·G masked inputs go through the backbone in chunks of ``config.chunk_size``;
        nothing loops over groups.
        """
        b, g, n = unit_masks.shape
        flat_masks = unit_masks.reshape(b * g, n)
        outputs, pooled = [], []
        for start in range(0, b * g, self.config.chunk_size):
            rows = torch.arange(start, min(start + self.config.chunk_size, b * g), device=x.device)
            out, feat = self.backbone.forward_masked(x[rows // g], flat_masks[rows])
            outputs.append(out)
            pooled.append(feat)
        return torch.cat(outputs).view(b, g, -1), torch.cat(pooled).view(b, g, -1)

    def forward(
        self,
        x: Tensor,
        unit_valid: Tensor | None = None,
        always_on: Tensor | None = None,
        segments: Tensor | None = None,
    ) -> SOPOutput:
        """Group, predict per group, select, and sum.

        Parameters
        ----------
        x : Tensor
            A batch of inputs in the backbone's format.
        unit_valid : Tensor, optional
            (B, N) bool, False for padding units (never grouped, always masked).
        always_on : Tensor, optional
            (B, N) bool, units added to every group (e.g. a question segment in QA).
        segments : Tensor, optional
            (B, N) integer segment id per unit, −1 for none: the candidate groups when
            ``config.generator`` is "segments" (required then, refused otherwise).
        """
        given = self.config.generator == "segments"
        if given != (segments is not None):
            raise ValueError(
                "segments: pass forward(x, segments=...) with generator 'segments', and only then"
                f" (this SOP's generator is {self.config.generator!r})"
            )
        gate, group_valid = None, None
        if segments is not None:
            masks, group_valid = segments_to_masks(
                segments.to(x.device), self.config.n_groups, unit_valid
            )
            empty = ~group_valid.any(1)
            if bool(empty.any()):
                i = int(empty.nonzero()[0])
                raise ValueError(
                    f"segments: input {i} has no unit in any segment; give every input at "
                    "least one segment (ids ≥ 0)"
                )
            scores = torch.zeros_like(masks).masked_fill(masks < 0.5, float("-inf"))
        else:
            src = self.feature_backbone if self.feature_backbone is not None else self.backbone
            groups = self.generator(src.unit_features(x), unit_valid)
            masks, scores, gate = groups.masks, groups.scores, groups.gate
        if always_on is not None:
            masks = masks + (1.0 - masks) * always_on.unsqueeze(1).to(masks.dtype)
        if unit_valid is not None:
            masks = masks * unit_valid.unsqueeze(1).to(masks.dtype)
        if group_valid is not None:  # padding groups stay empty
            masks = masks * group_valid.unsqueeze(-1).to(masks.dtype)
        group_outputs, group_features = self.group_forward(x, masks)
        if gate is not None:  # the anchor gate, the same in training and evaluation
            group_outputs = group_outputs * gate.unsqueeze(-1)
        weights = self.selector(group_features, group_valid)
        prediction = (weights * group_outputs).sum(1)
        unit_shape = self.backbone.unit_shape(x)
        return SOPOutput(
            prediction=prediction,
            masks=masks.view(*masks.shape[:2], *unit_shape),
            group_outputs=group_outputs,
            weights=weights,
            group_features=group_features,
            scores=scores,
            group_valid=group_valid,
        )
