"""How SOP and the per-token captum methods explain the conjunction task.

:func:`explain_example`: Integrated Gradients, feature ablation and KernelSHAP attribute BERT's
word embeddings per token, SOP explains by groups, and every method is scored by the one
insertion/deletion rule of :mod:`sop_cosmo.attribution` (one token per step; SOP's groups also
on their own axis). :func:`both_in_top_group_rate` and :func:`group_diversity` measure SOP's
groups against the two words of the task.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from sop_cosmo.attribution import grouped_insertion_deletion, insertion_deletion
from sop_cosmo.core import SumOfParts, group_ranking, unit_ranking

from .conjunction import ConjunctionData
from .model import BertSOPBackbone, EncodedBatch, top_group_masks

__all__ = [
    "both_in_top_group_rate",
    "explain_example",
    "group_diversity",
    "sop_forward",
    "subset",
]


@torch.no_grad()
def sop_forward(model: SumOfParts, enc: EncodedBatch, batch_size: int = 256) -> dict[str, Tensor]:
    """SOP's predicted class, top-contribution group mask and that group's weight per input."""
    preds, tops, top_w = [], [], []
    for idx in torch.arange(len(enc.input_ids)).split(batch_size):
        out = model(
            enc.input_ids[idx], unit_valid=enc.unit_valid[idx], always_on=enc.always_on[idx]
        )
        pred = out.prediction.argmax(-1)
        rows = torch.arange(len(pred))
        contrib = out.contributions[rows, :, pred]  # (b, G) for the predicted class
        preds.append(pred)
        tops.append(top_group_masks(out))
        top_w.append(out.weights[rows, contrib.argmax(-1), pred])
    # top_weight: selector weight of the top-contribution group for the predicted class.
    return {"pred": torch.cat(preds), "top": torch.cat(tops), "top_weight": torch.cat(top_w)}


def both_in_top_group_rate(
    model: SumOfParts, enc: EncodedBatch, data: ConjunctionData, rows: Tensor
) -> float:
    """Fraction of ``rows`` (positive examples) whose top-contribution group has A and B."""
    top = sop_forward(model, subset(enc, rows))["top"]
    # Token i of a sentence sits at position i + 1 (after [CLS]).
    pa = torch.as_tensor(data.pos_a[rows.numpy()]) + 1
    pb = torch.as_tensor(data.pos_b[rows.numpy()]) + 1
    r = torch.arange(len(rows))
    return float((top[r, pa] & top[r, pb]).float().mean())


@torch.no_grad()
def group_diversity(
    model: SumOfParts, enc: EncodedBatch, data: ConjunctionData, rows: Tensor
) -> dict[str, float]:
    """Mean number of groups holding both words, and of distinct masks, per example in ``rows``."""
    sub = subset(enc, rows)
    out = model(sub.input_ids, unit_valid=sub.unit_valid, always_on=sub.always_on)
    masks = out.masks > 0.5  # (n, G, L)
    r = torch.arange(len(rows))
    pa = torch.as_tensor(data.pos_a[rows.numpy()]) + 1
    pb = torch.as_tensor(data.pos_b[rows.numpy()]) + 1
    both = masks[r, :, pa] & masks[r, :, pb]  # (n, G)
    distinct = [len({tuple(m.tolist()) for m in masks[i]}) for i in range(len(rows))]
    return {
        "groups_with_both_words": float(both.sum(1).float().mean()),
        "distinct_masks": float(np.mean(distinct)),
    }


def subset(enc: EncodedBatch, rows: Tensor) -> EncodedBatch:
    """The ``rows`` of an encoded batch."""
    return EncodedBatch(
        enc.input_ids[rows],
        enc.token_type_ids[rows],
        enc.unit_valid[rows],
        enc.always_on[rows],
        enc.text_positions[rows],
    )


def _credit(scores: Tensor, pa: int, pb: int) -> dict[str, float]:
    """Shares of total |attribution| on A, on B, and the balance min/max of A's and B's."""
    a, b = float(scores[pa]), float(scores[pb])
    total = float(scores.abs().sum()) + 1e-12
    hi = max(abs(a), abs(b))
    return {
        "share_a": abs(a) / total,
        "share_b": abs(b) / total,
        "balance": min(abs(a), abs(b)) / hi if hi > 0 else 0.0,
    }


def explain_example(
    backbone: BertSOPBackbone,
    sop: SumOfParts,
    ids: Tensor,
    pa: int,
    pb: int,
    *,
    seed: int,
    shap_samples: int,
) -> dict[str, Any]:
    """Per-token attributions, credit split and insertion/deletion AUCs for one example."""
    from captum.attr import FeatureAblation, IntegratedGradients, KernelShap

    length = ids.shape[0]
    emb = backbone.word_embeddings(ids[None])[0].detach()  # (L, D)
    base = backbone.baseline_embedding().detach().expand_as(emb).clone()
    # [CLS] and [SEP] stay put in every method (SOP keeps them in every group too).
    base[0], base[-1] = emb[0], emb[-1]
    ones = torch.ones(1, length)

    def f(e: Tensor) -> Tensor:
        return backbone.forward_embeds(e, ones.expand(e.shape[0], -1))[0]

    with torch.no_grad():
        target = int(f(emb[None]).argmax(-1))
    token_mask = torch.arange(length).view(1, length, 1).expand(1, length, emb.shape[1])
    torch.manual_seed(seed)
    attrs = {
        "integrated_gradients": IntegratedGradients(f)
        .attribute(emb[None], baselines=base[None], target=target, n_steps=32)
        .sum(-1)[0],
        "feature_ablation": FeatureAblation(f)
        .attribute(emb[None], baselines=base[None], target=target, feature_mask=token_mask)
        .mean(-1)[0],
        "kernel_shap": KernelShap(f)
        .attribute(
            emb[None],
            baselines=base[None],
            target=target,
            feature_mask=token_mask,
            n_samples=shap_samples,
        )
        .mean(-1)[0],
    }
    gen = torch.Generator().manual_seed(seed)
    attrs["random"] = torch.rand(length, generator=gen)
    result: dict[str, Any] = {"credit": {}, "aucs": {}}
    unit_mask = torch.arange(length).view(length, 1)
    for name, a in attrs.items():
        a = a.detach()
        if name != "random":
            result["credit"][name] = _credit(a, pa, pb)
        curves = insertion_deletion(
            f, emb, a, feature_mask=unit_mask, baseline=base, task="classification"
        )
        result["aucs"][name] = curves.aucs
    with torch.no_grad():
        on = torch.zeros(1, length, dtype=torch.bool)
        on[0, 0] = on[0, -1] = True
        out = sop(ids[None], always_on=on)
    masks = out.masks[0] > 0.5  # (G, L)
    curves = grouped_insertion_deletion(
        f,
        emb,
        masks.unsqueeze(-1),
        group_ranking(out, target, signed=True)[0],
        baseline=base,
        task="classification",
    )
    result["aucs"]["sop_groups"] = curves.aucs
    # Per-token SOP score: selector weight summed over the groups holding the token, scored on
    # the same one-token-per-step curve as the baselines.
    token_scores = (out.weights[0, :, target, None] * masks.float()).sum(0)
    token_scores = unit_ranking(token_scores, masks, group_ranking(out, target, signed=True)[0])
    curves = insertion_deletion(
        f, emb, token_scores, feature_mask=unit_mask, baseline=base, task="classification"
    )
    result["aucs"]["sop"] = curves.aucs
    result["top_group"] = top_group_masks(out, torch.tensor([target]))[0].tolist()
    result["token_attr"] = {k: v.detach().tolist() for k, v in attrs.items() if k != "random"}
    return result
