"""Adapters that let :class:`~sop_cosmo.core.model.SumOfParts` wrap any differentiable model.

SOP needs three things from a backbone, and nothing else:

(a) per-unit features for grouping, ``unit_features(x) -> (B, N, D)``, where a *unit* is an image
    patch, a token or a tabular feature;
(b) the output on a masked input, and (c) the pooled feature the output head reads, both from
    ``forward_masked(x, unit_mask) -> (outputs (b, C), pooled (b, E))``.

Three ready-made adapters cover images (CNNs and ViTs, masking pixels), token sequences (masking
embeddings) and flat feature vectors (masking coordinates). Masks are multiplicative and
differentiable, so gradients reach the group generator through them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ImageBackbone", "SOPBackbone", "TokenBackbone", "VectorBackbone"]


class SOPBackbone(nn.Module, ABC):
    """The interface SOP needs from a backbone.

    Attributes
    ----------
    n_outputs : int
        Number of outputs C (regression targets or classes).
    pooled_dim : int
        Size E of the pooled feature that the output head reads.
    feature_dim : int
        Size D of the per-unit features used for grouping.
    """

    n_outputs: int
    pooled_dim: int
    feature_dim: int

    @abstractmethod
    def unit_features(self, x: Tensor) -> Tensor:
        """Per-unit features for grouping, shape (B, N, D)."""

    @abstractmethod
    def forward_masked(self, x: Tensor, unit_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Outputs (b, C) and pooled features (b, E) of x (b, ...) under unit_mask (b, N)."""

    @abstractmethod
    def unit_shape(self, x: Tensor) -> tuple[int, ...]:
        """Shape the N units take for display, e.g. ``(gh, gw)`` for an image grid."""

    @abstractmethod
    def expand_mask(self, unit_mask: Tensor, x: Tensor) -> Tensor:
        """Unit masks (..., N) to input-space masks (..., *x.shape[1:])."""

    def head_weight(self) -> Tensor | None:
        """Weight (C, E) of a linear output head, used to initialise the selector queries."""
        head = getattr(self, "head", None)
        return head.weight if isinstance(head, nn.Linear) else None

    def forward(self, x: Tensor) -> Tensor:
        """Plain (unmasked) prediction, shape (B, C)."""
        n = self.unit_features_count(x)
        return self.forward_masked(x, x.new_ones(x.shape[0], n))[0]

    def unit_features_count(self, x: Tensor) -> int:
        """Number of units N for input ``x``."""
        return math.prod(self.unit_shape(x))


def _blend(x: Tensor, mask: Tensor, baseline: float | Tensor) -> Tensor:
    # x where the mask is 1, the baseline where it is 0; linear in the mask, so it carries gradient.
    return x * mask + (1.0 - mask) * baseline


class ImageBackbone(SOPBackbone):
    """Images (B, C, H, W) grouped over a grid of ``patch_size`` patches; masking zeroes pixels.

    Parameters
    ----------
    encoder : nn.Module
        Maps images (b, C, H, W) to pooled features (b, E): a CNN trunk or a ViT up to its
        CLS token.
    head : nn.Module
        Maps pooled features (b, E) to outputs (b, C_out). A ``nn.Linear`` head also seeds the
        selector queries.
    image_size : tuple of int
        (H, W) of the inputs.
    patch_size : int
        Side of the square grouping patch in pixels. A partial last row/column is allowed.
    in_channels : int
        Number of input channels C.
    n_outputs, pooled_dim : int
        C_out and E.
    feature_net : nn.Module, optional
        Maps images to a feature map (b, D, h, w), pooled onto the patch grid for grouping.
        Defaults to the raw pixels of each patch (D = C·p²).
    feature_dim : int, optional
        D when ``feature_net`` is given.
    baseline : float or Tensor
        Value of masked-out pixels (0, a per-channel mean, ...).
    """

    def __init__(
        self,
        encoder: nn.Module,
        head: nn.Module,
        *,
        image_size: tuple[int, int],
        patch_size: int,
        in_channels: int,
        n_outputs: int,
        pooled_dim: int,
        feature_net: nn.Module | None = None,
        feature_dim: int | None = None,
        baseline: float | Tensor = 0.0,
    ) -> None:
        super().__init__()
        if feature_net is not None and feature_dim is None:
            raise ValueError("feature_dim: pass the channel count D of feature_net's output map")
        self.encoder, self.head, self.feature_net = encoder, head, feature_net
        self.image_size, self.patch_size = tuple(image_size), int(patch_size)
        self.grid = tuple(math.ceil(s / self.patch_size) for s in self.image_size)
        self.in_channels, self.n_outputs, self.pooled_dim = in_channels, n_outputs, pooled_dim
        self.feature_dim = feature_dim if feature_net is not None else in_channels * patch_size**2
        n_units = self.grid[0] * self.grid[1]
        # Positions let the generator tell identical-looking patches apart.
        self.pos_embed = nn.Parameter(0.02 * torch.randn(n_units, self.feature_dim))
        self.register_buffer("baseline", torch.as_tensor(baseline, dtype=torch.float32))

    def unit_shape(self, x: Tensor) -> tuple[int, ...]:
        return self.grid

    def _check(self, x: Tensor) -> None:
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, *self.image_size):
            raise ValueError(
                f"x: expected shape (B, {self.in_channels}, {self.image_size[0]}, "
                f"{self.image_size[1]}), got {tuple(x.shape)}"
            )

    def unit_features(self, x: Tensor) -> Tensor:
        self._check(x)
        if self.feature_net is not None:
            fmap = F.adaptive_avg_pool2d(self.feature_net(x), self.grid)  # (B, D, gh, gw)
            feats = fmap.flatten(2).transpose(1, 2)
        else:
            p, (gh, gw) = self.patch_size, self.grid
            padded = F.pad(x, (0, gw * p - x.shape[-1], 0, gh * p - x.shape[-2]))
            feats = F.unfold(padded, kernel_size=p, stride=p).transpose(1, 2)  # (B, N, C·p²)
        return feats + self.pos_embed

    def expand_mask(self, unit_mask: Tensor, x: Tensor) -> Tensor:
        p, (gh, gw), (h, w) = self.patch_size, self.grid, self.image_size
        m = unit_mask.reshape(*unit_mask.shape[:-1], gh, gw)
        m = m.repeat_interleave(p, dim=-2).repeat_interleave(p, dim=-1)[..., :h, :w]
        return m.unsqueeze(-3).expand(*m.shape[:-2], self.in_channels, h, w)

    def forward_masked(self, x: Tensor, unit_mask: Tensor) -> tuple[Tensor, Tensor]:
        x_masked = _blend(x, self.expand_mask(unit_mask, x), self.baseline)
        pooled = self.encoder(x_masked)
        return self.head(pooled), pooled


class TokenBackbone(SOPBackbone):
    """Token sequences (B, L) of ids, grouped over tokens; masking replaces embeddings.

    Parameters
    ----------
    embed : nn.Module
        Token ids (b, L) to embeddings (b, L, D).
    encoder : callable
        ``encoder(embeddings (b, L, D), attention_mask (b, L)) -> pooled (b, E)``.
    head : nn.Module
        Pooled (b, E) to outputs (b, C).
    n_outputs, pooled_dim, feature_dim : int
        C, E and D.
    baseline : float or Tensor
        Embedding of a masked token (0, or e.g. the [MASK] embedding, shape (D,)).
    """

    def __init__(
        self,
        embed: nn.Module,
        encoder: nn.Module | Callable[[Tensor, Tensor], Tensor],
        head: nn.Module,
        *,
        n_outputs: int,
        pooled_dim: int,
        feature_dim: int,
        baseline: float | Tensor = 0.0,
    ) -> None:
        super().__init__()
        self.embed, self.encoder, self.head = embed, encoder, head
        self.n_outputs, self.pooled_dim, self.feature_dim = n_outputs, pooled_dim, feature_dim
        self.register_buffer("baseline", torch.as_tensor(baseline, dtype=torch.float32))

    def unit_shape(self, x: Tensor) -> tuple[int, ...]:
        return (x.shape[1],)

    def unit_features(self, x: Tensor) -> Tensor:
        return self.embed(x)

    def expand_mask(self, unit_mask: Tensor, x: Tensor) -> Tensor:
        return unit_mask

    def forward_masked(self, x: Tensor, unit_mask: Tensor) -> tuple[Tensor, Tensor]:
        emb = _blend(self.embed(x), unit_mask.unsqueeze(-1), self.baseline)
        pooled = self.encoder(emb, unit_mask)
        return self.head(pooled), pooled


class VectorBackbone(SOPBackbone):
    """Flat feature vectors (B, d); each coordinate is a unit, masked to ``baseline``.

    Parameters
    ----------
    body : nn.Module
        Features (b, d) to pooled features (b, E), e.g. an MLP without its last layer.
    head : nn.Module
        Pooled (b, E) to outputs (b, C).
    n_features, n_outputs, pooled_dim : int
        d, C and E.
    feature_dim : int
        Size D of the learned unit features ``x_i · v + pos_i`` used for grouping.
    value_features : bool
        Include the value term ``x_i · v``. Set False to make groups depend on the feature's
        identity only: when the masked value is also a legal input value (0 for binary data),
        value-dependent masks can encode the label through *which* units they hide.
    baseline : float or Tensor
        Value of a masked coordinate.
    """

    def __init__(
        self,
        body: nn.Module,
        head: nn.Module,
        *,
        n_features: int,
        n_outputs: int,
        pooled_dim: int,
        feature_dim: int = 16,
        value_features: bool = True,
        baseline: float | Tensor = 0.0,
    ) -> None:
        super().__init__()
        self.body, self.head, self.value_features = body, head, value_features
        self.n_features, self.n_outputs, self.pooled_dim = n_features, n_outputs, pooled_dim
        self.feature_dim = feature_dim
        self.value_embed = nn.Parameter(torch.randn(feature_dim) / math.sqrt(feature_dim))
        self.pos_embed = nn.Parameter(torch.randn(n_features, feature_dim) / math.sqrt(feature_dim))
        self.register_buffer("baseline", torch.as_tensor(baseline, dtype=torch.float32))

    def unit_shape(self, x: Tensor) -> tuple[int, ...]:
        return (self.n_features,)

    def unit_features(self, x: Tensor) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"x: expected shape (B, {self.n_features}), got {tuple(x.shape)}")
        pos = self.pos_embed.expand(x.shape[0], -1, -1)  # (B, d, D)
        return pos + x.unsqueeze(-1) * self.value_embed if self.value_features else pos

    def expand_mask(self, unit_mask: Tensor, x: Tensor) -> Tensor:
        return unit_mask

    def forward_masked(self, x: Tensor, unit_mask: Tensor) -> tuple[Tensor, Tensor]:
        pooled = self.body(_blend(x, unit_mask, self.baseline))
        return self.head(pooled), pooled
