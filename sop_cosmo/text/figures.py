"""The text demo's figure: SOP's top group and Integrated Gradients over the tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sop_cosmo._io import atomic_path

__all__ = ["plot_groups"]


def plot_groups(path: Path, examples: list[dict[str, Any]]) -> None:
    """Write ``path`` (PNG): per example, the tokens shaded by SOP's top group and by |IG|.

    Each example is a dict with ``tokens``, ``top_group`` (bools), ``ig`` (|attribution| per
    token) and ``words`` (the tokens to print in bold).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(examples)
    fig, axes = plt.subplots(2 * n, 1, figsize=(11, 0.9 * 2 * n + 0.6), squeeze=False)
    cmap = plt.get_cmap("Reds")
    for i, ex in enumerate(examples):
        for j, (title, values) in enumerate(
            (
                ("SOP top group", [1.0 if t else 0.0 for t in ex["top_group"]]),
                ("Integrated Gradients (|attr|, normalised)", ex["ig"]),
            )
        ):
            ax = axes[2 * i + j, 0]
            ax.axis("off")
            ax.set_title(f"example {i}: {title}", fontsize=8, loc="left")
            vmax = max(abs(v) for v in values) or 1.0
            x = 0.0
            for tok, v in zip(ex["tokens"], values, strict=True):
                colour = cmap(0.15 + 0.75 * abs(v) / vmax) if v else (1, 1, 1, 1)
                weight = "bold" if tok in ex["words"] else "normal"
                ax.text(
                    x,
                    0.3,
                    tok,
                    fontsize=9,
                    family="monospace",
                    weight=weight,
                    bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.5},
                    transform=ax.transAxes,
                )
                x += (len(tok) + 1.5) * 0.0105
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
