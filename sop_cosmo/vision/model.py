"""SOP image classifiers around a Hugging Face ``ViTForImageClassification``.

Two ways of hiding a group's masked patches from the ViT:

- **pixel masking** (:func:`vit_image_backbone`): the core :class:`~sop_cosmo.core.ImageBackbone`
  sets masked pixels to a baseline and the ViT sees every patch token;
- **token dropping** (:class:`TokenDropViTBackbone`): masked patch tokens are removed before the
  transformer layers, so each group's forward pass runs on ⌈k·N⌉ + 1 tokens only.

Both keep SOP's contract ``prediction == Σ_g weights·group_outputs`` exactly (it is computed
that way by :class:`~sop_cosmo.core.SumOfParts`); they differ in what a masked input *means* to
the backbone and in speed (see docs/vision.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn
from transformers import ViTConfig, ViTForImageClassification

from ..core import ImageBackbone, SOPConfig, SumOfParts

__all__ = [
    "TokenDropViTBackbone",
    "ViTCLSEncoder",
    "load_vit",
    "n_kept_units",
    "sop_vit_classifier",
    "tiny_vit",
    "vit_image_backbone",
    "vit_token_backbone",
]

Masking = Literal["pixels", "tokens"]


def _vit_layers(vit: nn.Module) -> nn.ModuleList:
    # transformers >= 5 keeps the blocks at ``vit.vit.layers``; 4.x at ``vit.vit.encoder.layer``.
    body = vit.vit  # works for ViTForImageClassification and ViTCLSEncoder alike
    layers = getattr(body, "layers", None)
    if layers is None:
        layers = body.encoder.layer
    return layers


def _vit_geometry(vit: ViTForImageClassification) -> tuple[tuple[int, int], int, int]:
    cfg = vit.config
    size = cfg.image_size
    image_size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    patch = cfg.patch_size if isinstance(cfg.patch_size, int) else int(cfg.patch_size[0])
    return image_size, int(patch), int(cfg.num_channels)


class ViTCLSEncoder(nn.Module):
    """A ViT up to its final layernorm, returning the CLS token (b, E).

    Parameters
    ----------
    vit : ViTForImageClassification
        The classifier whose ``vit`` body is wrapped (shared, not copied).
    """

    def __init__(self, vit: ViTForImageClassification) -> None:
        super().__init__()
        self.vit = vit.vit

    def forward(self, pixel_values: Tensor) -> Tensor:
        return self.vit(pixel_values).last_hidden_state[:, 0]


def vit_image_backbone(
    vit: ViTForImageClassification,
    *,
    patch_size: int | None = None,
    baseline: float | Tensor = 0.0,
) -> ImageBackbone:
    """Pixel-masking SOP adapter: encoder = ViT up to the CLS token, head = ``vit.classifier``.

    Parameters
    ----------
    vit : ViTForImageClassification
        The classifier; its modules are shared with the adapter.
    patch_size : int, optional
        Side of a grouping unit in pixels; defaults to the ViT's own patch size.
    baseline : float or Tensor
        Value of masked pixels (0 = the mean of standardised images).
    """
    image_size, vit_patch, channels = _vit_geometry(vit)
    return ImageBackbone(
        ViTCLSEncoder(vit),
        vit.classifier,
        image_size=image_size,
        patch_size=patch_size or vit_patch,
        in_channels=channels,
        n_outputs=int(vit.config.num_labels),
        pooled_dim=int(vit.config.hidden_size),
        baseline=baseline,
    )


class TokenDropViTBackbone(ImageBackbone):
    """Token-dropping SOP adapter: a group's ViT pass sees only its kept patch tokens + CLS.

    Units are the ViT's own patches, so the unit grid equals the token grid. Unit features for
    grouping are the raw patch pixels (as in :class:`~sop_cosmo.core.ImageBackbone`).

    Kept tokens are gathered in one batch: SOP masks keep exactly ⌈k·N⌉ units per group, so all
    rows share one token count (rows with other counts, e.g. the all-ones mask of a plain
    forward, are processed per count). Each kept token embedding is multiplied by its mask value,
    which is exactly 1 in the forward pass, so the straight-through gradient reaches the mask.
    Dropped units receive no gradient (they are absent from the computation).

    Parameters
    ----------
    vit : ViTForImageClassification
        The classifier; its modules are shared with the adapter.
    """

    def __init__(self, vit: ViTForImageClassification) -> None:
        image_size, patch, channels = _vit_geometry(vit)
        super().__init__(
            ViTCLSEncoder(vit),
            vit.classifier,
            image_size=image_size,
            patch_size=patch,
            in_channels=channels,
            n_outputs=int(vit.config.num_labels),
            pooled_dim=int(vit.config.hidden_size),
        )
        if any(s % patch for s in image_size):
            raise ValueError(f"vit: image_size {image_size} must be a multiple of patch {patch}")

    def _encode_kept(self, x: Tensor, unit_mask: Tensor, n_keep: int) -> Tensor:
        emb = self.encoder.vit.embeddings
        patches = emb.patch_embeddings(x) + emb.position_embeddings[:, 1:]  # (b, N, D)
        # Kept units first, in position order (stable sort on a 0/1 key).
        idx = torch.sort((unit_mask > 0).to(torch.int8), dim=1, descending=True, stable=True)
        keep = idx.indices[:, :n_keep]  # (b, n_keep)
        tokens = patches.gather(1, keep.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))
        tokens = tokens * unit_mask.gather(1, keep).unsqueeze(-1)  # carries the STE gradient
        cls = (emb.cls_token + emb.position_embeddings[:, :1]).expand(x.shape[0], -1, -1)
        hidden = emb.dropout(torch.cat([cls, tokens], dim=1))
        # Reached through the shared encoder, not re-registered (no duplicate state_dict keys).
        for layer in _vit_layers(self.encoder):
            hidden = layer(hidden, None)
        return self.encoder.vit.layernorm(hidden)[:, 0]

    def forward_masked(self, x: Tensor, unit_mask: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x)
        counts = (unit_mask > 0).sum(1)
        uniq = torch.unique(counts)
        if uniq.numel() == 1:
            pooled = self._encode_kept(x, unit_mask, int(uniq.item()))
        else:
            pooled = x.new_empty(x.shape[0], self.pooled_dim)
            for c in uniq.tolist():
                rows = (counts == c).nonzero().squeeze(1)
                pooled = pooled.index_put((rows,), self._encode_kept(x[rows], unit_mask[rows], c))
        return self.head(pooled), pooled


def vit_token_backbone(vit: ViTForImageClassification) -> TokenDropViTBackbone:
    """Token-dropping SOP adapter of ``vit``; see :class:`TokenDropViTBackbone`."""
    return TokenDropViTBackbone(vit)


def sop_vit_classifier(
    vit: ViTForImageClassification,
    *,
    patch_size: int | None = None,
    sop_config: SOPConfig | None = None,
    masking: Masking = "pixels",
    baseline: float | Tensor = 0.0,
) -> SumOfParts:
    """Wrap a ViT classifier into a Sum-of-Parts model.

    Parameters
    ----------
    vit : ViTForImageClassification
        The backbone classifier (frozen by default, see ``SOPConfig.freeze_backbone``).
    patch_size : int, optional
        Grouping patch in pixels (pixel masking only; token dropping uses the ViT patch).
    sop_config : SOPConfig, optional
        SOP hyper-parameters; default ``SOPConfig(n_groups=8, keep_fraction=0.2)``.
    masking : {"pixels", "tokens"}
        How a group hides its masked patches.
    baseline : float or Tensor
        Masked pixel value (pixel masking only).
    """
    cfg = sop_config or SOPConfig(n_groups=8, keep_fraction=0.2)
    if masking == "pixels":
        backbone: ImageBackbone = vit_image_backbone(vit, patch_size=patch_size, baseline=baseline)
    elif masking == "tokens":
        _, vit_patch, _ = _vit_geometry(vit)
        if patch_size not in (None, vit_patch):
            raise ValueError(
                f"patch_size: token dropping groups the ViT's own {vit_patch}-pixel patches, "
                f"got {patch_size}"
            )
        backbone = vit_token_backbone(vit)
    else:
        raise ValueError(f"masking: expected 'pixels' or 'tokens', got {masking!r}")
    return SumOfParts(backbone, cfg)


@dataclass(frozen=True)
class _TinyDefaults:
    hidden_size: int = 48
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    intermediate_size: int = 96


def tiny_vit(
    image_size: int = 32,
    patch_size: int = 4,
    num_channels: int = 1,
    num_labels: int = 10,
    *,
    hidden_size: int = _TinyDefaults.hidden_size,
    num_hidden_layers: int = _TinyDefaults.num_hidden_layers,
    num_attention_heads: int = _TinyDefaults.num_attention_heads,
    intermediate_size: int = _TinyDefaults.intermediate_size,
    dropout: float = 0.0,
    seed: int | None = None,
) -> ViTForImageClassification:
    """A small randomly initialised ViT classifier from a local ``ViTConfig`` (no download).

    Parameters
    ----------
    image_size, patch_size, num_channels, num_labels : int
        Geometry and number of classes.
    hidden_size, num_hidden_layers, num_attention_heads, intermediate_size : int
        Transformer size.
    dropout : float
        Hidden and attention dropout.
    seed : int, optional
        Seed for the initial weights.
    """
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} must be a multiple of patch_size {patch_size}")
    config = ViTConfig(
        image_size=image_size,
        patch_size=patch_size,
        num_channels=num_channels,
        num_labels=num_labels,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    if seed is not None:
        torch.manual_seed(seed)
    return ViTForImageClassification(config)


def load_vit(name_or_path: str, num_labels: int | None = None) -> ViTForImageClassification:
    """Load a ViT classifier with ``from_pretrained`` (offline: pass a local folder).

    Parameters
    ----------
    name_or_path : str
        A local checkpoint folder (``config.json`` + weights) or a hub id when online.
    num_labels : int, optional
        Replace the classifier with a fresh ``num_labels``-way head (mismatched sizes allowed).
    """
    if num_labels is None:
        return ViTForImageClassification.from_pretrained(name_or_path)
    return ViTForImageClassification.from_pretrained(
        name_or_path, num_labels=num_labels, ignore_mismatched_sizes=True
    )


def n_kept_units(n_units: int, keep_fraction: float) -> int:
    """⌈k·N⌉, the number of units every SOP group keeps."""
    return math.ceil(keep_fraction * n_units)
