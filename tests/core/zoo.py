"""Tiny random backbones of the three kinds SOP must wrap: a CNN, a ViT and a token model."""

import torch
from torch import nn

from sop_cosmo.core import ImageBackbone, TokenBackbone, VectorBackbone


class TinyViT(nn.Module):
    """Patch embedding + transformer encoder + CLS pooling, (b, 1, 16, 16) -> (b, 24)."""

    def __init__(self, dim=24, patch=4):
        super().__init__()
        self.patch = nn.Conv2d(1, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.randn(1, 1, dim))
        self.pos = nn.Parameter(0.02 * torch.randn(1, 17, dim))
        layer = nn.TransformerEncoderLayer(dim, 4, 48, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], 1) + self.pos
        return self.encoder(tokens)[:, 0]


class MeanPoolEncoder(nn.Module):
    """Transformer over token embeddings, mean-pooled over the unmasked tokens."""

    def __init__(self, dim=16):
        super().__init__()
        layer = nn.TransformerEncoderLayer(dim, 2, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)

    def forward(self, emb, mask):
        h = self.encoder(emb)
        w = mask.unsqueeze(-1)
        return (h * w).sum(1) / w.sum(1).clamp_min(1.0)


def make_cnn(n_outputs=2, in_channels=1, size=16, patch=4):
    trunk = nn.Sequential(
        nn.Conv2d(in_channels, 8, 3, padding=1),
        nn.LeakyReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.LeakyReLU(),
    )
    encoder = nn.Sequential(trunk, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return ImageBackbone(
        encoder,
        nn.Linear(16, n_outputs),
        image_size=(size, size),
        patch_size=patch,
        in_channels=in_channels,
        n_outputs=n_outputs,
        pooled_dim=16,
        feature_net=trunk,
        feature_dim=16,
    )


def make_vit(n_outputs=3):
    return ImageBackbone(
        TinyViT(),
        nn.Linear(24, n_outputs),
        image_size=(16, 16),
        patch_size=4,
        in_channels=1,
        n_outputs=n_outputs,
        pooled_dim=24,
    )


def make_token_model(n_outputs=2, vocab=50):
    return TokenBackbone(
        nn.Embedding(vocab, 16),
        MeanPoolEncoder(16),
        nn.Linear(16, n_outputs),
        n_outputs=n_outputs,
        pooled_dim=16,
        feature_dim=16,
    )


def make_mlp(d=6, n_outputs=1):
    body = nn.Sequential(nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
    return VectorBackbone(
        body, nn.Linear(32, n_outputs), n_features=d, n_outputs=n_outputs, pooled_dim=32
    )
