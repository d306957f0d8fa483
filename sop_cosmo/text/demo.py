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

from sop_cosmo._io import atomic_path
from sop_cosmo._progress import progress_bar
from sop_cosmo._threads import torch_threads
from sop_cosmo._training import train_epochs
from sop_cosmo.core import SOPConfig, SumOfParts
from sop_cosmo.seeding import seed_everything

from .conjunction import make_conjunction_data
from .explain import both_in_top_group_rate, explain_example, group_diversity, sop_forward, subset
from .figures import plot_groups
from .model import BertSOPBackbone, EncodedBatch, WordVocab, tiny_bert

__all__ = ["DEFAULTS", "QUICK", "run_demo", "train_bert", "train_sop"]


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

    def batch_loss(idx: Tensor) -> Tensor:
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
        logits = backbone.bert(input_ids=ids[n_masked:], attention_mask=valid[n_masked:].long())
        return F.cross_entropy(torch.cat([logits_m, logits.logits]), torch.cat([y_m, y[n_masked:]]))

    train_epochs(
        backbone.bert,
        batch_loss,
        len(labels),
        opt,
        epochs=epochs,
        batch_size=batch_size,
        gen=gen,
        desc="bert",
        progress=progress,
    )


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
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)

    def batch_loss(idx: Tensor) -> Tensor:
        out = model(
            enc.input_ids[idx], unit_valid=enc.unit_valid[idx], always_on=enc.always_on[idx]
        )
        return F.cross_entropy(out.prediction, labels[idx])

    def val_accuracy() -> float:
        assert val is not None
        return float((sop_forward(model, val[0])["pred"] == val[1]).float().mean())

    history = train_epochs(
        model,
        batch_loss,
        len(labels),
        opt,
        epochs=epochs,
        batch_size=batch_size,
        gen=gen,
        val_score=None if val is None else val_accuracy,
        desc="sop",
        progress=progress,
    )
    return history["val"]


@torch.no_grad()
def _accuracy_bert(backbone: BertSOPBackbone, enc: EncodedBatch, labels: Tensor) -> float:
    logits = backbone.bert(input_ids=enc.input_ids, attention_mask=enc.unit_valid.long()).logits
    return float((logits.argmax(-1) == labels).float().mean())


def _mean_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


DEFAULTS: dict[str, Any] = {
    "n_train": 3000,
    "n_val": 500,
    "n_test": 1000,
    "bert_epochs": 10,
    "bert_mask_fraction": 0.5,
    "sop_epochs": 5,
    "n_groups": 8,
    # Every group keeps a weight, set by scores standardised over the groups (core/selector):
    # quick runs reached SOP accuracy ≥ 0.99 on 4 of seeds 0-4, against 2 of 4 with the raw
    # scores and 3 of 5 with 2 active groups (docs/text.md).
    "active_groups": 8,
    # Gumbel noise on the generator scores in training (core/generator): without it a seed
    # can rank one of the two words low in every group, where no gradient reaches it, and stay
    # at 0.50 (full runs, seeds 1 and 6); 2.0 still failed seed 6; with 4.0 seeds 0-9 reach
    # ≥ 0.995, quick and full (docs/text.md).
    "explore_noise": 4.0,
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
    # 8, not 4: with exploration the quick run's 16 steps per epoch need more epochs to settle.
    "sop_epochs": 8,
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
    seed_everything(seed)

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

    cfg = SOPConfig(
        n_groups=s["n_groups"],
        keep_fraction=s["keep_fraction"],
        n_heads=2,
        active_groups=s["active_groups"],
        explore_noise=s["explore_noise"],
    )
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
    sop_acc = float((sop_forward(sop, enc_test)["pred"] == y_test).float().mean())
    untrained_acc = float((sop_forward(untrained, enc_test)["pred"] == y_test).float().mean())

    pos_rows = torch.nonzero(y_test == 1).flatten()
    rate = both_in_top_group_rate(sop, enc_test, test, pos_rows)
    rate_untrained = both_in_top_group_rate(untrained, enc_test, test, pos_rows)
    # Size of the explanation: text tokens (not [CLS]/[SEP]) in the top group of positives.
    pos_out = sop_forward(sop, subset(enc_test, pos_rows))
    top_size = float((pos_out["top"] & ~enc_test.always_on[pos_rows]).sum(1).float().mean())
    top_weight = float(pos_out["top_weight"].mean())
    diversity = group_diversity(sop, enc_test, test, pos_rows[:256])

    t_explain = time.perf_counter()
    per_example, figure_rows = [], []
    for k, row in enumerate(
        progress_bar(pos_rows[: s["n_explain"]].tolist(), desc="explain", disable=not progress)
    ):
        length = int(enc_test.unit_valid[row].sum())
        ids = enc_test.input_ids[row, :length]
        pa, pb = int(test.pos_a[row]) + 1, int(test.pos_b[row]) + 1
        res = explain_example(
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
    plot_groups(out_dir / "text_groups.png", figure_rows)
    with atomic_path(out_dir / "text_metrics.json") as tmp:
        tmp.write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics
