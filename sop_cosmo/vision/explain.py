"""Scoring of the vision demo's explanations, and the timing of its two masking variants.

SOP and the captum baselines (:data:`BASELINE_METHODS`, built from
:data:`sop_cosmo.attribution.baselines.METHODS`) explain the same backbone for one target class;
all of them are scored by the one insertion/deletion rule of :mod:`sop_cosmo.attribution` over
the same patch grid.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import Tensor, nn

from sop_cosmo._progress import progress_bar

from ..attribution import grouped_insertion_deletion, insertion_deletion, patch_feature_mask
from ..attribution.baselines import METHODS
from ..core import SOPConfig, SumOfParts, group_ranking, unit_ranking
from .model import vit_image_backbone, vit_token_backbone

__all__ = ["BASELINE_METHODS", "METRICS", "compare_masking", "evaluate_explanations"]

#: The post-hoc methods the demo compares SOP with (any key of ``METHODS`` would do).
BASELINE_METHODS: tuple[str, ...] = (
    "integrated_gradients",
    "kernel_shap",
    "lime",
    "layer_gradcam",
    "random",
)
#: The AUCs reported per method.
METRICS = ("insertion/prob", "deletion/prob")


def evaluate_explanations(
    vit: nn.Module,
    sop: SumOfParts,
    images: Tensor,
    *,
    unit_size: int,
    n_samples: int,
    ig_steps: int,
    n_steps: int | None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[dict[str, dict[str, float]], dict[str, list[dict[str, float]]]]:
    """Insertion/deletion AUCs of SOP and every captum baseline on ``images``.

    All methods explain the same backbone, for the class it predicts on the full image, and are
    scored by the same rule over the same grid of ``unit_size`` squares (hidden pixels = 0, the
    mean). Two SOP entries:

    - ``"sop"``: a per-unit score, the selector weight of that class summed over the groups
      holding the unit (Σ_g w_g·m_g), on the same ``n_steps`` per-unit curve as the baselines
      (units in no selected group tie at 0 and go in index order);
    - ``"sop_groups"``: the grouped curve, one step per group in order of contribution w·y
      (x-axis = fraction of groups, so it is not on the baselines' axis).

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

    fmask = patch_feature_mask(tuple(images.shape[-2:]), unit_size)
    # LayerGradCam on the patch embedding, whose grid is the ViT's patch grid: nearest resize.
    settings = {
        "layer": vit.vit.embeddings.patch_embeddings.projection,
        "n_samples": n_samples,
        "n_steps": ig_steps,
        "interpolate_mode": "nearest",
    }
    explainers = {m: METHODS[m].from_settings(forward, **settings) for m in BASELINE_METHODS}
    methods = ("sop", "sop_groups", *BASELINE_METHODS)
    per_image: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    for i, x in enumerate(progress_bar(images, desc="explain", leave=False, disable=not progress)):
        with torch.no_grad():
            target = int(forward(x[None]).argmax(-1))
            out = sop(x[None])
        unit_masks = out.masks.flatten(2)[0]  # (G, N)
        x_rep = x[None].expand(len(unit_masks), -1, -1, -1)
        group_masks = sop.backbone.expand_mask(unit_masks, x_rep) > 0
        res = grouped_insertion_deletion(
            forward,
            x,
            group_masks,
            group_ranking(out, target, signed=True)[0],
            baseline=0.0,
            task="classification",
            batch_size=128,
        )
        per_image["sop_groups"].append({k: res.aucs[k] for k in METRICS})
        unit_scores = (out.weights[0, :, target, None] * unit_masks).sum(0)  # (N,)
        unit_scores = unit_ranking(
            unit_scores, unit_masks, group_ranking(out, target, signed=True)[0]
        )
        attrs = {"sop": sop.backbone.expand_mask(unit_scores, x[None]).reshape(x.shape)}
        for method, explainer in explainers.items():
            attrs[method] = explainer.attribute(x, target, patch_size=unit_size, seed=seed + i)
        for method, attr in attrs.items():
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
