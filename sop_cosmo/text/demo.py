"""Offline text demo: SOP on the conjunction task, against per-token captum attributions.

A tiny BERT (local config, CPU) learns "label 1 iff words A and B both occur"; SOP is trained
around it (backbone frozen). On positive test examples we measure whether SOP's
top-contribution group holds both words, how Integrated Gradients, feature ablation and
KernelSHAP split per-token credit between A and B, and insertion/deletion AUCs of every method
under one scoring rule (:mod:`sop_cosmo.attribution`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from sop_cosmo._io import atomic_path
from sop_cosmo._threads import torch_threads
from sop_cosmo.attribution import grouped_insertion_deletion, insertion_deletion
from sop_cosmo.core import SOPConfig, SumOfParts

from .conjunction import ConjunctionData, make_conjunction_data
from .model import BertSOPBackbone, EncodedBatch, WordVocab, tiny_bert, top_group_masks

__all__ = [
    "DEFAULTS",
    "QUICK",
    "both_in_top_group_rate",
    "group_diversity",
    "run_demo",
    "train_bert",
    "train_sop",
]


def _seed(seed: int) -> None:
    torch.manual_seed(seed)


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[Tensor]:
    return list(torch.randperm(n, generator=gen).split(batch_size))


def train_bert(
    backbone: BertSOPBackbone,
    enc: EncodedBatch,
    labels: Tensor,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
    mask_fraction: float = 0.0,
    relabel: Callable[[Tensor, Tensor], Tensor] | None = None,
) -> None:
    """Fine-tune the BERT classifier on (ids, labels) with cross-entropy (AdamW).

    With ``mask_fraction > 0`` that fraction of every batch is shown masked the way SOP masks
    a group (:meth:`BertSOPBackbone.forward_masked`): each text token is kept with a
    probability drawn uniformly from [0.2, 1] per example, so the frozen backbone later sees
    SOP's masked inputs in distribution. ``relabel(ids, kept) -> labels`` gives the label of a
    masked input (for the conjunction task: both words still visible); it is required, since
    keeping the full input's label would teach the model labels its input no longer supports.
    """
    if mask_fraction > 0 and relabel is None:
        raise ValueError("relabel: masked training needs the labels of masked inputs")
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(backbone.bert.parameters(), lr=lr, weight_decay=0.01)
    backbone.bert.train()
    for _ in tqdm(range(epochs), desc="bert", disable=not progress):
        for idx in _batches(len(labels), batch_size, gen):
            ids, valid, y = enc.input_ids[idx], enc.unit_valid[idx], labels[idx]
            n_masked = round(mask_fraction * len(idx))
            if n_masked:
                keep_p = 0.2 + 0.8 * torch.rand(n_masked, 1, generator=gen)
                kept = torch.rand(n_masked, ids.shape[1], generator=gen) < keep_p
                kept = (kept | enc.always_on[idx[:n_masked]]) & valid[:n_masked]
                logits_m = backbone.forward_masked(ids[:n_masked], kept.float())[0]
                y_m = relabel(ids[:n_masked], kept)
            else:
                logits_m, y_m = labels.new_empty(0, backbone.n_outputs).float(), y[:0]
            logits = backbone.bert(
                input_ids=ids[n_masked:], attention_mask=valid[n_masked:].long()
            ).logits
            loss = F.cross_entropy(torch.cat([logits_m, logits]), torch.cat([y_m, y[n_masked:]]))
            opt.zero_grad()
            loss.backward()
            opt.step()
    backbone.bert.eval()


def train_sop(
    model: SumOfParts,
    enc: EncodedBatch,
    labels: Tensor,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
    val: tuple[EncodedBatch, Tensor] | None = None,
) -> list[float]:
    """Train SOP's generator and selector (backbone frozen) with cross-entropy on the labels.

    With ``val`` (encoded inputs, labels) the state with the best validation accuracy after
    any epoch is restored at the end (SOP training can drift into collapsed groups); returns
    the per-epoch validation accuracies (empty without ``val``).
    """
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr)
    history: list[float] = []
    best: dict[str, Tensor] = {}
    model.train()
    for _ in tqdm(range(epochs), desc="sop", disable=not progress):
        for idx in _batches(len(labels), batch_size, gen):
            out = model(
                enc.input_ids[idx], unit_valid=enc.unit_valid[idx], always_on=enc.always_on[idx]
            )
            loss = F.cross_entropy(out.prediction, labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if val is not None:
            model.eval()
            acc = float((_sop_forward(model, val[0])["pred"] == val[1]).float().mean())
            if not history or acc > max(history):
                best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            history.append(acc)
            model.train()
    model.eval()
    if val is not None:
        model.load_state_dict(best)
    return history


@torch.no_grad()
def _sop_forward(model: SumOfParts, enc: EncodedBatch, batch_size: int = 256) -> dict[str, Tensor]:
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
    top = _sop_forward(model, _subset(enc, rows))["top"]
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
    sub = _subset(enc, rows)
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


def _subset(enc: EncodedBatch, rows: Tensor) -> EncodedBatch:
    return EncodedBatch(
        enc.input_ids[rows],
        enc.token_type_ids[rows],
        enc.unit_valid[rows],
        enc.always_on[rows],
        enc.text_positions[rows],
    )


@torch.no_grad()
def _accuracy_bert(backbone: BertSOPBackbone, enc: EncodedBatch, labels: Tensor) -> float:
    logits = backbone.bert(input_ids=enc.input_ids, attention_mask=enc.unit_valid.long()).logits
    return float((logits.argmax(-1) == labels).float().mean())


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


def _explain_example(
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
        out.contributions[0, :, target],
        baseline=base,
        task="classification",
    )
    result["aucs"]["sop_groups"] = curves.aucs
    # Per-token SOP score: selector weight summed over the groups holding the token, scored on
    # the same one-token-per-step curve as the baselines.
    token_scores = (out.weights[0, :, target, None] * masks.float()).sum(0)
    curves = insertion_deletion(
        f, emb, token_scores, feature_mask=unit_mask, baseline=base, task="classification"
    )
    result["aucs"]["sop"] = curves.aucs
    result["top_group"] = top_group_masks(out, torch.tensor([target]))[0].tolist()
    result["token_attr"] = {k: v.detach().tolist() for k, v in attrs.items() if k != "random"}
    return result


def _mean_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def _plot_groups(path: Path, examples: list[dict[str, Any]]) -> None:
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


DEFAULTS: dict[str, Any] = {
    "n_train": 3000,
    "n_val": 500,
    "n_test": 1000,
    "bert_epochs": 10,
    "bert_mask_fraction": 0.5,
    "sop_epochs": 5,
    "n_groups": 8,
    "keep_fraction": 0.2,
    "masking": "embedding",
    "unit_features": "contextual",
    "n_explain": 40,
    "shap_samples": 200,
}
"""Settings of the full demo; ``run_demo(**overrides)`` replaces any of them."""

QUICK: dict[str, Any] = {
    "n_train": 1000,
    "n_val": 200,
    "n_test": 200,
    "sop_epochs": 4,
    "n_explain": 4,
    "shap_samples": 32,
}
"""What ``quick=True`` changes (about 20 s on one CPU core)."""


def run_demo(
    out_dir: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Train BERT and SOP on the conjunction task; write ``text_metrics.json`` and a figure.

    The run uses one CPU thread (restored afterwards), so its numbers do not depend on the
    machine's thread count.

    Parameters
    ----------
    out_dir : str or Path
        Output folder (created).
    quick : bool
        Smaller data and fewer SOP epochs (:data:`QUICK`).
    seed : int
        Seeds data, initialisation, batching and attributions.
    progress : bool
        Show tqdm progress bars.
    **overrides
        Any key of :data:`DEFAULTS`, applied after ``quick``.

    Returns
    -------
    dict
        The metrics written to ``out_dir/text_metrics.json``.
    """
    with torch_threads(1):
        return _run_demo(out_dir, quick=quick, seed=seed, progress=progress, **overrides)


def _run_demo(
    out_dir: str | Path,
    *,
    quick: bool = False,
    seed: int = 0,
    progress: bool = True,
    **overrides: Any,
) -> dict[str, Any]:
    """Body of :func:`run_demo`."""
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"overrides: unknown settings {sorted(unknown)}; known: {list(DEFAULTS)}")
    s = {**DEFAULTS, **(QUICK if quick else {}), **overrides}
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    _seed(seed)

    train = make_conjunction_data(s["n_train"], seed=seed)
    val = make_conjunction_data(s["n_val"], seed=seed + 1)
    test = make_conjunction_data(s["n_test"], seed=seed + 2)
    vocab = WordVocab.build(train.sentences)
    enc_train, enc_test = vocab.encode(train.sentences), vocab.encode(test.sentences)
    enc_val, y_val = vocab.encode(val.sentences), torch.as_tensor(val.labels)
    y_train, y_test = torch.as_tensor(train.labels), torch.as_tensor(test.labels)
    id_a, id_b = vocab.stoi[train.word_a], vocab.stoi[train.word_b]

    def relabel(ids: Tensor, kept: Tensor) -> Tensor:
        # A masked sentence is positive only if both words are still visible.
        return (((ids == id_a) & kept).any(1) & ((ids == id_b) & kept).any(1)).long()

    bert = tiny_bert(len(vocab), 2, hidden_size=64, num_layers=2, num_heads=2, seed=seed)
    backbone = BertSOPBackbone(
        bert, mask_embedding="zero", masking=s["masking"], unit_features=s["unit_features"]
    )
    t_bert = time.perf_counter()
    train_bert(
        backbone,
        enc_train,
        y_train,
        epochs=s["bert_epochs"],
        seed=seed,
        progress=progress,
        mask_fraction=s["bert_mask_fraction"],
        relabel=relabel,
    )
    t_bert = time.perf_counter() - t_bert
    bert_acc = _accuracy_bert(backbone, enc_test, y_test)

    cfg = SOPConfig(n_groups=s["n_groups"], keep_fraction=s["keep_fraction"], n_heads=2)
    # SOP first: SumOfParts freezes the shared backbone in place, and a model built after that
    # would deep-copy a frozen feature network for its generator.
    torch.manual_seed(seed + 1)
    sop = SumOfParts(backbone, cfg)
    torch.manual_seed(seed + 1)
    untrained = SumOfParts(backbone, cfg)  # same initial generator and selector, never trained
    untrained.eval()
    assert any(p.requires_grad for p in sop.feature_backbone.parameters())
    t_sop = time.perf_counter()
    val_history = train_sop(
        sop,
        enc_train,
        y_train,
        epochs=s["sop_epochs"],
        seed=seed,
        progress=progress,
        val=(enc_val, y_val),
    )
    t_sop = time.perf_counter() - t_sop
    sop_acc = float((_sop_forward(sop, enc_test)["pred"] == y_test).float().mean())
    untrained_acc = float((_sop_forward(untrained, enc_test)["pred"] == y_test).float().mean())

    pos_rows = torch.nonzero(y_test == 1).flatten()
    rate = both_in_top_group_rate(sop, enc_test, test, pos_rows)
    rate_untrained = both_in_top_group_rate(untrained, enc_test, test, pos_rows)
    # Size of the explanation: text tokens (not [CLS]/[SEP]) in the top group of positives.
    pos_out = _sop_forward(sop, _subset(enc_test, pos_rows))
    top_size = float((pos_out["top"] & ~enc_test.always_on[pos_rows]).sum(1).float().mean())
    top_weight = float(pos_out["top_weight"].mean())
    diversity = group_diversity(sop, enc_test, test, pos_rows[:256])

    t_explain = time.perf_counter()
    per_example, figure_rows = [], []
    for k, row in enumerate(
        tqdm(pos_rows[: s["n_explain"]].tolist(), desc="explain", disable=not progress)
    ):
        length = int(enc_test.unit_valid[row].sum())
        ids = enc_test.input_ids[row, :length]
        pa, pb = int(test.pos_a[row]) + 1, int(test.pos_b[row]) + 1
        res = _explain_example(
            backbone, sop, ids, pa, pb, seed=seed + k, shap_samples=s["shap_samples"]
        )
        per_example.append(res)
        if len(figure_rows) < 4:
            ig = res["token_attr"]["integrated_gradients"]
            figure_rows.append(
                {
                    "tokens": [vocab.itos[i] for i in ids.tolist()],
                    "top_group": res["top_group"],
                    "ig": [abs(v) for v in ig],
                    "words": {test.word_a, test.word_b},
                }
            )
    t_explain = time.perf_counter() - t_explain

    credit = {
        m: _mean_dicts([r["credit"][m] for r in per_example]) for m in per_example[0]["credit"]
    }
    aucs = {m: _mean_dicts([r["aucs"][m] for r in per_example]) for m in per_example[0]["aucs"]}
    metrics: dict[str, Any] = {
        "quick": quick,
        "seed": seed,
        "settings": s,
        "n_positive_test": len(pos_rows),
        "n_explained": len(per_example),
        "words": [test.word_a, test.word_b],
        "sop_config": cfg.to_dict(),
        "bert_test_accuracy": bert_acc,
        "sop_test_accuracy": sop_acc,
        "untrained_sop_test_accuracy": untrained_acc,
        "sop_val_accuracy_per_epoch": val_history,
        "sop_both_in_top_group_rate": rate,
        "untrained_sop_both_in_top_group_rate": rate_untrained,
        "sop_top_group_mean_text_tokens": top_size,
        "sop_top_group_mean_weight": top_weight,
        "sop_group_diversity": diversity,
        "token_credit": credit,
        "insertion_deletion_auc": aucs,
        "scoring": "softmax prob of BERT's full-input class; hidden token = zero word embedding "
        "([CLS]/[SEP] always shown); insertion higher is better, deletion lower; 'sop_groups' "
        "is on a fraction-of-groups axis, all others one token per step",
        "runtime_s": {
            "bert_training": t_bert,
            "sop_training": t_sop,
            "explanations": t_explain,
            "total": time.perf_counter() - t0,
        },
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _plot_groups(out_dir / "text_groups.png", figure_rows)
    with atomic_path(out_dir / "text_metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics
