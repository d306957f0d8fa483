"""End-to-end vision demo on real, offline data (scikit-learn digits), CPU only.

1. Train a tiny ViT (local ``ViTConfig``) on 32×32 digits.
2. Wrap it in Sum-of-Parts (frozen backbone) and train the generator and selector.
3. Score SOP's groups and captum baselines on the same backbone, the same patch grid and the
   same rule (probability of the backbone's full-input class; insertion high, deletion low).
4. Time the two masking variants (pixels vs token dropping) on the same masks.

Writes ``vision_metrics.json`` and ``vision_groups.png`` to ``out_dir``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from .._io import atomic_path
from ..attribution import grouped_insertion_deletion, insertion_deletion
from ..core import SOPConfig, SumOfParts
from .baselines import BASELINE_METHODS, patch_feature_mask, posthoc_attribution
from .digits import DigitsSplit, load_digits_split
from .model import sop_vit_classifier, tiny_vit, vit_image_backbone, vit_token_backbone

__all__ = ["compare_masking", "evaluate_explanations", "run_demo", "train_classifier", "train_sop"]

METRICS = ("insertion/prob", "deletion/prob")


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - seeds third-party code (captum, sklearn)
    torch.manual_seed(seed)


def _batches(n: int, batch_size: int, gen: torch.Generator | None) -> list[Tensor]:
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    return list(order.split(batch_size))


def train_classifier(
    model: Callable[[Tensor], Tensor],
    params: list[nn.Parameter],
    x: Tensor,
    y: Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int = 64,
    seed: int = 0,
    desc: str = "train",
    set_train: Callable[[bool], Any] | None = None,
) -> list[float]:
    """Minimise cross-entropy of ``model(x)`` (logits) over ``params`` with AdamW.

    Returns the mean loss of each epoch.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    n_steps = epochs * math.ceil(len(y) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(n_steps, 1))
    history = []
    if set_train is not None:
        set_train(True)
    for _ in (bar := tqdm(range(epochs), desc=desc, leave=False)):
        losses = []
        for idx in _batches(len(y), batch_size, gen):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
        history.append(float(np.mean(losses)))
        bar.set_postfix(loss=f"{history[-1]:.3f}")
    if set_train is not None:
        set_train(False)
    return history


@torch.no_grad()
def _accuracy(model: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, batch: int = 128) -> float:
    preds = torch.cat([model(x[i : i + batch]).argmax(-1) for i in range(0, len(y), batch)])
    return float((preds == y).float().mean())


def train_sop(
    sop: SumOfParts, data: DigitsSplit, *, epochs: int, lr: float, seed: int, n_train: int | None
) -> list[float]:
    """Train SOP's trainable parts (generator, selector, feature copy) with cross-entropy."""
    params = [p for p in sop.parameters() if p.requires_grad]
    x, y = data.x_train[:n_train], data.y_train[:n_train]
    return train_classifier(
        lambda b: sop(b).prediction,
        params,
        x,
        y,
        epochs=epochs,
        lr=lr,
        batch_size=32,
        seed=seed,
        desc="SOP",
        set_train=sop.train,
    )


def evaluate_explanations(
    vit: nn.Module,
    sop: SumOfParts,
    images: Tensor,
    *,
    patch_size: int,
    n_samples: int,
    ig_steps: int = 32,
    n_steps: int | None = 16,
    seed: int = 0,
) -> tuple[dict[str, dict[str, float]], dict[str, list[dict[str, float]]]]:
    """Insertion/deletion AUCs of SOP's groups and every captum baseline on ``images``.

    All methods explain the same backbone, for the class it predicts on the full image, and are
    scored by the same rule over the same patch grid (pixels set to 0 = mean when hidden).
    Per-patch curves take ``n_steps`` equal steps (None: one patch per step); SOP's grouped
    curve takes one step per group.

    Returns
    -------
    summary : dict
        Method -> metric -> mean AUC over the images.
    per_image : dict
        Method -> list of per-image AUC dicts.
    """
    vit.eval()
    sop.eval()

    def forward(b: Tensor) -> Tensor:
        return vit(b).logits

    fmask = patch_feature_mask(tuple(images.shape[-2:]), patch_size)
    layer = vit.vit.embeddings.patch_embeddings.projection
    per_image: dict[str, list[dict[str, float]]] = {m: [] for m in ("sop", *BASELINE_METHODS)}
    for i, x in enumerate(tqdm(images, desc="explain", leave=False)):
        with torch.no_grad():
            target = int(forward(x[None]).argmax(-1))
            out = sop(x[None])
        # SOP: groups ranked by their contribution w·y to the explained class.
        unit_masks = out.masks.flatten(2)[0]  # (G, N)
        group_masks = sop.backbone.expand_mask(
            unit_masks, x[None].expand(len(unit_masks), -1, -1, -1)
        )
        res = grouped_insertion_deletion(
            forward,
            x,
            group_masks > 0,
            out.contributions[0, :, target],
            baseline=0.0,
            task="classification",
            batch_size=128,
        )
        per_image["sop"].append({k: res.aucs[k] for k in METRICS})
        for method in BASELINE_METHODS:
            attr = posthoc_attribution(
                method,
                forward,
                x,
                target,
                patch_size=patch_size,
                layer=layer,
                n_samples=n_samples,
                ig_steps=ig_steps,
                seed=seed + i,
            )
            res = insertion_deletion(
                forward,
                x,
                attr,
                feature_mask=fmask,
                baseline=0.0,
                n_steps=n_steps,
                task="classification",
                batch_size=128,
            )
            per_image[method].append({k: res.aucs[k] for k in METRICS})
    summary = {
        m: {k: float(np.mean([r[k] for r in rows])) for k in METRICS}
        for m, rows in per_image.items()
    }
    return summary, per_image


def compare_masking(
    vit: nn.Module, x: Tensor, config: SOPConfig, *, repeats: int = 3, seed: int = 0
) -> dict[str, float]:
    """Time one SOP forward+backward with pixel masking and with token dropping.

    Both variants run on the same generator masks (the same SOP parts, only the backbone
    adapter differs). Also reports how often the two agree on each group's predicted class and
    the correlation of their group logits.
    """
    torch.manual_seed(seed)
    pix = SumOfParts(vit_image_backbone(vit), config)
    tok = SumOfParts(vit_token_backbone(vit), config)
    tok.load_state_dict(pix.state_dict())  # identical generator/selector: same masks
    timings = {}
    outs = {}
    for name, model in (("pixels", pix), ("tokens", tok)):
        model.train()
        best = math.inf
        for _ in range(repeats + 1):  # the first run warms up
            t0 = time.perf_counter()
            out = model(x)
            out.prediction.sum().backward()
            best = min(best, time.perf_counter() - t0) if _ > 0 else best
            model.zero_grad(set_to_none=True)
        timings[name] = best
        with torch.no_grad():
            model.eval()
            outs[name] = model(x)
    a, b = outs["pixels"].group_outputs, outs["tokens"].group_outputs
    agree = (a.argmax(-1) == b.argmax(-1)).float().mean()
    corr = torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1]
    return {
        "batch": len(x),
        "n_groups": config.n_groups,
        "pixels_s_per_step": timings["pixels"],
        "tokens_s_per_step": timings["tokens"],
        "speedup_tokens_over_pixels": timings["pixels"] / timings["tokens"],
        "group_argmax_agreement": float(agree),
        "group_logit_correlation": float(corr),
        "same_masks": bool(torch.equal(outs["pixels"].masks, outs["tokens"].masks)),
    }


def _plot_groups(
    path: Path, vit: nn.Module, sop: SumOfParts, images: Tensor, n_top: int = 3
) -> None:
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


def run_demo(
    out_dir: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    masking: str = "tokens",
) -> dict[str, Any]:
    """Train a tiny ViT and SOP on digits, compare explanations, write metrics and a figure.

    Parameters
    ----------
    out_dir : str or Path
        Where ``vision_metrics.json`` and ``vision_groups.png`` go.
    quick : bool
        Seconds-long smoke run (few epochs, a training subset, 3 explained images).
    seed : int
        Seed of the split, the initial weights, the batches and the samplers.
    masking : {"pixels", "tokens"}
        SOP masking variant to train. Token dropping (default) is the faster one on CPU (see
        ``masking_timing`` in the output). The metric always hides pixels of the backbone's
        input, for SOP and the baselines alike.

    Returns
    -------
    dict
        The metrics written to ``vision_metrics.json``.
    """
    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _seed_all(seed)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    s = dict(
        vit_epochs=1 if quick else 12,
        sop_epochs=1 if quick else 3,
        n_train=96 if quick else None,
        n_test_eval=48 if quick else None,
        n_explain=2 if quick else 20,
        n_samples=16 if quick else 128,
        ig_steps=8 if quick else 32,
        n_show=2 if quick else 4,
        timing_batch=4 if quick else 16,
    )
    patch = 4
    data = load_digits_split(32, seed=seed)

    vit = tiny_vit(32, patch, 1, 10, seed=seed)
    x_tr, y_tr = data.x_train[: s["n_train"]], data.y_train[: s["n_train"]]
    t0 = time.perf_counter()
    vit_hist = train_classifier(
        lambda b: vit(b).logits,
        list(vit.parameters()),
        x_tr,
        y_tr,
        epochs=s["vit_epochs"],
        lr=2e-3,
        seed=seed,
        desc="ViT",
        set_train=vit.train,
    )
    vit_time = time.perf_counter() - t0
    vit.eval()
    x_te, y_te = data.x_test[: s["n_test_eval"]], data.y_test[: s["n_test_eval"]]
    vit_acc = _accuracy(lambda b: vit(b).logits, x_te, y_te)

    config = SOPConfig(n_groups=8, keep_fraction=0.2, n_heads=4, chunk_size=512)
    torch.manual_seed(seed)
    sop = sop_vit_classifier(vit, sop_config=config, masking=masking)
    t0 = time.perf_counter()
    sop_hist = train_sop(
        sop, data, epochs=s["sop_epochs"], lr=1e-3, seed=seed, n_train=s["n_train"]
    )
    sop_time = time.perf_counter() - t0
    sop.eval()
    sop_acc = _accuracy(lambda b: sop(b).prediction, x_te, y_te, batch=64)

    gen = torch.Generator().manual_seed(seed)
    explain_idx = torch.randperm(len(data.y_test), generator=gen)[: s["n_explain"]]
    t0 = time.perf_counter()
    summary, _ = evaluate_explanations(
        vit,
        sop,
        data.x_test[explain_idx],
        patch_size=patch,
        n_samples=s["n_samples"],
        ig_steps=s["ig_steps"],
        seed=seed,
    )
    explain_time = time.perf_counter() - t0

    timing = compare_masking(
        vit, data.x_test[: s["timing_batch"]], config, repeats=1 if quick else 3, seed=seed
    )

    metrics: dict[str, Any] = {
        "dataset": "sklearn digits 8x8 upsampled to 32x32",
        "n_train": len(y_tr),
        "n_test": len(y_te),
        "backbone_test_accuracy": vit_acc,
        "sop_test_accuracy": sop_acc,
        "masking": masking,
        "n_explained": len(explain_idx),
        "explained_test_indices": explain_idx.tolist(),
        "scoring": "softmax prob of the backbone's full-input class; hidden pixels = 0 (mean); "
        "units = 4x4-pixel patches (8x8 grid); insertion higher is better, deletion lower",
        "aucs": summary,
        "masking_timing": timing,
        "sop_config": config.to_dict(),
        "settings": {**s, "patch_size": patch, "seed": seed, "quick": quick},
        "loss_history": {"vit": vit_hist, "sop": sop_hist},
        "runtime_s": {
            "vit_training": vit_time,
            "sop_training": sop_time,
            "explanations": explain_time,
        },
    }
    _plot_groups(out / "vision_groups.png", vit, sop, data.x_test[explain_idx[: s["n_show"]]])
    metrics["runtime_s"]["total"] = time.perf_counter() - t_start
    with atomic_path(out / "vision_metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2))
    return metrics
