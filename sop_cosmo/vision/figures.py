"""The vision demo's figure: images, SOP's top groups outlined, and the selector weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from .._io import atomic_path
from ..core import SumOfParts

__all__ = ["plot_groups"]


def plot_groups(
    path: Path, vit: nn.Module, sop: SumOfParts, images: Tensor, n_top: int = 3
) -> None:
    """Write ``path`` (PNG): per image, the input, its ``n_top`` groups by contribution to the
    backbone's predicted class, and the selector weights of that class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sop.eval()
    with torch.no_grad():
        out = sop(images)
        targets = vit(images).logits.argmax(-1)
    n = len(images)
    fig, axes = plt.subplots(n, n_top + 2, figsize=(2.2 * (n_top + 2), 2.2 * n), squeeze=False)
    for i in range(n):
        c = int(targets[i])
        contrib = out.contributions[i, :, c]
        order = torch.argsort(contrib, descending=True, stable=True)[:n_top]
        img = images[i, 0].numpy()
        axes[i, 0].imshow(img, cmap="gray")
        axes[i, 0].set_title(f"pred {c}")
        for j, g in enumerate(order.tolist()):
            ax = axes[i, j + 1]
            mask = sop.backbone.expand_mask(out.masks[i, g].flatten(), images[i : i + 1])[0]
            ax.imshow(img, cmap="gray")
            ax.imshow(
                np.ma.masked_where(mask.numpy() < 0.5, mask.numpy()), cmap="autumn", alpha=0.5
            )
            ax.contour(mask.numpy(), levels=[0.5], colors="red", linewidths=0.8)
            ax.set_title(f"group {g}: w={out.weights[i, g, c]:.2f}", fontsize=8)
        ax = axes[i, -1]
        ax.bar(range(out.weights.shape[1]), out.weights[i, :, c].numpy(), color="tab:blue")
        ax.set_title("selector weights", fontsize=8)
        ax.set_xlabel("group", fontsize=7)
        for a in axes[i, :-1]:
            a.set_xticks([])
            a.set_yticks([])
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
