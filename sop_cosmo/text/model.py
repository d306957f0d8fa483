"""SOP around a Hugging Face ``BertForSequenceClassification``; groups are token masks.

Two ways of hiding a group's masked tokens (``masking``):

``"embedding"`` (default)
    The masked token's *word* embedding is replaced by a baseline (zero, or the ``[MASK]`` word
    embedding); its position and segment embeddings stay, and every non-padding token is still
    attended to. The output depends on every mask entry, so the straight-through gradient can
    pull a dropped token *into* a group as well as push a kept one out.
``"attention"``
    The same replacement, and the masked tokens are also removed from BERT's attention mask, so
    no token attends to them (the masked input is then exactly the shorter sequence). Dropped
    tokens get no gradient: the generator can only learn to drop kept tokens. (The attention
    mask is binarised by ``transformers``, so no gradient flows through it.)

The classifier reads exactly what ``BertForSequenceClassification`` feeds it: the ``[CLS]``
state → pooler (dense + tanh) → dropout → classifier. (The SOP paper's published text model fed
the head another representation; the test ``test_backbone_matches_hf_forward`` pins ours to the
HF forward pass.)

Inputs ``x`` are token ids ``(B, L)``, or ``(B, 2, L)`` stacking ids and token-type (segment)
ids for sentence pairs such as MultiRC's question ‖ passage.

Also here: :class:`WordVocab`, a whitespace word-level vocabulary for offline tasks (no hub
tokenizer), :func:`tiny_bert` (a local ``BertConfig``) and :func:`load_bert` (the real
``from_pretrained`` path, offline on a local folder).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor
from transformers import BertConfig, BertForSequenceClassification

from sop_cosmo.core import SOPBackbone, SOPConfig, SOPOutput, SumOfParts

__all__ = [
    "SPECIAL_TOKENS",
    "BertSOPBackbone",
    "EncodedBatch",
    "WordVocab",
    "encode_with_tokenizer",
    "load_bert",
    "sop_bert_classifier",
    "tiny_bert",
    "top_group_masks",
]

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MASK_EMBEDDINGS = ("zero", "mask_token")
MASKINGS = ("embedding", "attention")
UNIT_FEATURES = ("contextual", "embedding")


class BertSOPBackbone(SOPBackbone):
    """SOP adapter for ``BertForSequenceClassification``; units are tokens.

    Parameters
    ----------
    bert : BertForSequenceClassification
        The classifier. Its ``classifier`` (``nn.Linear``) is the SOP head, so the selector
        queries are seeded from it.
    mask_embedding : {"zero", "mask_token"}
        Word embedding of a masked token: zeros, or the current ``[MASK]`` row of the word
        embedding table (``bert.config.mask_token_id``, or ``mask_token_id``).
    mask_token_id : int, optional
        Id of ``[MASK]`` when the config has none (``WordVocab`` uses 4).
    masking : {"embedding", "attention"}
        Whether masked tokens stay visible to attention (with the baseline embedding) or are
        also removed from the attention mask; see the module docstring.
    unit_features : {"contextual", "embedding"}
        What the group generator reads per token: BERT's last hidden states on the whole input
        (default; a word's feature then knows its context), or the context-free embedding
        layer output.
    """

    def __init__(
        self,
        bert: BertForSequenceClassification,
        *,
        mask_embedding: str = "zero",
        mask_token_id: int | None = None,
        masking: str = "embedding",
        unit_features: str = "contextual",
    ) -> None:
        super().__init__()
        if masking not in MASKINGS:
            raise ValueError(f"masking: expected one of {MASKINGS}, got {masking!r}")
        if unit_features not in UNIT_FEATURES:
            raise ValueError(
                f"unit_features: expected one of {UNIT_FEATURES}, got {unit_features!r}"
            )
        self.unit_feature_kind = unit_features
        if mask_embedding not in MASK_EMBEDDINGS:
            raise ValueError(
                f"mask_embedding: expected one of {MASK_EMBEDDINGS}, got {mask_embedding!r}"
            )
        if mask_embedding == "mask_token":
            mask_token_id = (
                mask_token_id
                if mask_token_id is not None
                else getattr(bert.config, "mask_token_id", None)
            )
            if mask_token_id is None:
                raise ValueError(
                    "mask_token_id: the BERT config has no mask_token_id; pass it explicitly "
                    "(e.g. WordVocab.mask_id) or use mask_embedding='zero'"
                )
        self.bert = bert
        self.head = bert.classifier
        self.mask_embedding, self.mask_token_id = mask_embedding, mask_token_id
        self.masking = masking
        pad = getattr(bert.config, "pad_token_id", None)
        self.pad_token_id = 0 if pad is None else int(pad)
        self.n_outputs = int(bert.config.num_labels)
        self.pooled_dim = self.feature_dim = int(bert.config.hidden_size)

    @staticmethod
    def split_input(x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Token ids (b, L) and token-type ids (b, L) or None, from ``x`` (b, L) or (b, 2, L)."""
        if x.ndim == 2:
            return x, None
        if x.ndim == 3 and x.shape[1] == 2:
            return x[:, 0], x[:, 1]
        raise ValueError(f"x: expected token ids (B, L) or (B, 2, L), got {tuple(x.shape)}")

    def unit_shape(self, x: Tensor) -> tuple[int, ...]:
        return (x.shape[-1],)

    def expand_mask(self, unit_mask: Tensor, x: Tensor) -> Tensor:
        return unit_mask

    def word_embeddings(self, x: Tensor) -> Tensor:
        """Word embeddings (b, L, D) only, without positions or segments."""
        ids, _ = self.split_input(x)
        return self.bert.bert.embeddings.word_embeddings(ids)

    def baseline_embedding(self) -> Tensor:
        """Word embedding (D,) that replaces a masked token."""
        table = self.bert.bert.embeddings.word_embeddings.weight
        if self.mask_embedding == "zero":
            return table.new_zeros(table.shape[1])
        return table[self.mask_token_id]

    def unit_features(self, x: Tensor) -> Tensor:
        ids, types = self.split_input(x)
        if self.unit_feature_kind == "embedding":
            # Word + position + segment embeddings: context-free token identity.
            return self.bert.bert.embeddings(input_ids=ids, token_type_ids=types)
        # Contextual: BERT's last hidden states on the whole (unmasked) input.
        attend = (ids != self.pad_token_id).long()
        return self.bert.bert(
            input_ids=ids, attention_mask=attend, token_type_ids=types
        ).last_hidden_state

    def forward_embeds(
        self,
        word_embeds: Tensor,
        attention_mask: Tensor | None = None,
        token_type_ids: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Logits (b, C) and pooled features (b, E) from word embeddings (b, L, D).

        BERT adds position and segment embeddings to ``inputs_embeds`` itself; the pooled
        feature is BERT's pooler output on ``[CLS]``, and the logits are
        ``classifier(dropout(pooled))``, exactly as in ``BertForSequenceClassification``.
        """
        out = self.bert.bert(
            inputs_embeds=word_embeds,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
        )
        pooled = out.pooler_output
        return self.head(self.bert.dropout(pooled)), pooled

    def forward_masked(self, x: Tensor, unit_mask: Tensor) -> tuple[Tensor, Tensor]:
        ids, types = self.split_input(x)
        m = unit_mask.unsqueeze(-1).to(self.bert.dtype)
        # Linear in the mask, so the straight-through gradient reaches the generator.
        emb = self.word_embeddings(x) * m + (1.0 - m) * self.baseline_embedding()
        if self.masking == "attention":
            attend = unit_mask.detach() > 0
        else:
            # Padding is never attended to, whatever the mask says.
            attend = ids != self.pad_token_id
        return self.forward_embeds(emb, attend.long(), types)


def sop_bert_classifier(
    bert: BertForSequenceClassification,
    *,
    sop_config: SOPConfig | None = None,
    mask_embedding: str = "zero",
    mask_token_id: int | None = None,
    masking: str = "embedding",
) -> SumOfParts:
    """Wrap a BERT sequence classifier into a :class:`~sop_cosmo.core.SumOfParts` model.

    Parameters
    ----------
    bert : BertForSequenceClassification
        Trained classifier (frozen by default, see ``SOPConfig.freeze_backbone``).
    sop_config : SOPConfig, optional
        SOP hyper-parameters.
    mask_embedding : {"zero", "mask_token"}
        Word embedding of masked tokens.
    mask_token_id : int, optional
        ``[MASK]`` id when the BERT config has none.
    masking : {"embedding", "attention"}
        How masked tokens are hidden; see the module docstring.

    Returns
    -------
    SumOfParts
        Call it as ``model(x, unit_valid=ids != pad, always_on=...)``.
    """
    backbone = BertSOPBackbone(
        bert, mask_embedding=mask_embedding, mask_token_id=mask_token_id, masking=masking
    )
    return SumOfParts(backbone, sop_config)


def top_group_masks(output: SOPOutput, target: Tensor | None = None) -> Tensor:
    """Token mask (B, L) of each example's highest-contribution group.

    Parameters
    ----------
    output : SOPOutput
        SOP forward output.
    target : Tensor, optional
        (B,) class whose contribution ranks the groups; default the predicted class.
    """
    if target is None:
        target = output.prediction.argmax(-1)
    contrib = output.contributions  # (B, G, C)
    idx = target.view(-1, 1, 1).expand(-1, contrib.shape[1], 1)
    top = contrib.gather(-1, idx).squeeze(-1).argmax(-1)  # (B,)
    return output.masks[torch.arange(len(top)), top] > 0.5


def tiny_bert(
    vocab_size: int,
    num_labels: int,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 128,
    max_position: int = 64,
    dropout: float = 0.1,
    pad_token_id: int = 0,
    mask_token_id: int | None = 4,
    seed: int = 0,
) -> BertForSequenceClassification:
    """A small randomly initialised BERT classifier from a local ``BertConfig`` (no download)."""
    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=num_labels,
        pad_token_id=pad_token_id,
    )
    # Eager attention: several times faster than SDPA for tiny models on CPU.
    config._attn_implementation = "eager"
    if mask_token_id is not None:
        config.mask_token_id = mask_token_id
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def load_bert(
    name_or_path: str | Path, num_labels: int | None = None
) -> BertForSequenceClassification:
    """``BertForSequenceClassification.from_pretrained(name_or_path)``.

    A local folder (``config.json`` + weights, e.g. from ``save_pretrained``) loads with no
    network access; a hub name needs the network or a populated cache. ``num_labels`` sets the
    classifier size when the checkpoint has no (or a different) head.
    """
    kwargs: dict = {}
    if num_labels is not None:
        kwargs["num_labels"] = int(num_labels)
    if Path(name_or_path).is_dir():
        kwargs["local_files_only"] = True
    return BertForSequenceClassification.from_pretrained(str(name_or_path), **kwargs)


@dataclass
class EncodedBatch:
    """Padded, encoded token sequences.

    Attributes
    ----------
    input_ids : Tensor
        (B, L) ids, right-padded with ``[PAD]``.
    token_type_ids : Tensor
        (B, L) segment ids: 0 for ``[CLS]``, the query and its ``[SEP]``; 1 for the text.
    unit_valid : Tensor
        (B, L) bool, False on padding.
    always_on : Tensor
        (B, L) bool: ``[CLS]``, ``[SEP]`` and the query segment, shown to every SOP group.
    text_positions : Tensor
        (B, L) index of each position's token in the (untruncated) text, −1 elsewhere; maps
        SOP masks back to document tokens (e.g. for evidence IoU).
    """

    input_ids: Tensor
    token_type_ids: Tensor
    unit_valid: Tensor
    always_on: Tensor
    text_positions: Tensor

    @property
    def stacked(self) -> Tensor:
        """(B, 2, L) ids and segment ids, the pair input of :class:`BertSOPBackbone`."""
        return torch.stack([self.input_ids, self.token_type_ids], dim=1)


class WordVocab:
    """Whitespace word-level vocabulary with BERT's special tokens (ids 0-4, see SPECIAL_TOKENS).

    Parameters
    ----------
    words : sequence of str
        Non-special words, in id order after the specials.
    lowercase : bool
        Lower-case tokens before lookup.
    """

    def __init__(self, words: Sequence[str], *, lowercase: bool = True) -> None:
        self.lowercase = lowercase
        self.itos = list(SPECIAL_TOKENS) + [w for w in words if w not in SPECIAL_TOKENS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = range(5)

    @classmethod
    def build(
        cls,
        texts: Iterable[Sequence[str] | str],
        *,
        min_count: int = 1,
        max_size: int | None = None,
        lowercase: bool = True,
    ) -> WordVocab:
        """Vocabulary of the words in ``texts`` (token lists or whitespace strings), by count."""
        counts: Counter[str] = Counter()
        for text in texts:
            tokens = text.split() if isinstance(text, str) else text
            counts.update(t.lower() if lowercase else t for t in tokens)
        # Ties broken alphabetically so the vocabulary does not depend on input order.
        words = [
            w for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if c >= min_count
        ]
        return cls(words[:max_size] if max_size is not None else words, lowercase=lowercase)

    def __len__(self) -> int:
        return len(self.itos)

    def ids(self, tokens: Sequence[str]) -> list[int]:
        """Ids of tokens (``[UNK]`` for unknown words)."""
        norm = (t.lower() for t in tokens) if self.lowercase else tokens
        return [self.stoi.get(t, self.unk_id) for t in norm]

    def encode(
        self,
        texts: Sequence[Sequence[str]],
        queries: Sequence[Sequence[str]] | None = None,
        *,
        max_length: int | None = None,
    ) -> EncodedBatch:
        """Encode ``[CLS] text [SEP]``, or ``[CLS] query [SEP] text [SEP]`` with queries.

        Texts are truncated at the end to fit ``max_length``; queries are kept whole (an error
        if they do not fit).
        """
        if queries is not None and len(queries) != len(texts):
            raise ValueError(f"queries: expected {len(texts)} queries, got {len(queries)}")
        rows = []
        for i, text in enumerate(texts):
            query = list(queries[i]) if queries is not None else None
            head = [self.cls_id] + ([*self.ids(query), self.sep_id] if query is not None else [])
            budget = None if max_length is None else max_length - len(head) - 1
            if budget is not None and budget < 0:
                raise ValueError(
                    f"max_length: {max_length} leaves no room for text {i} (query of "
                    f"{len(head) - 2} tokens)"
                )
            body = self.ids(text)[:budget]
            ids = [*head, *body, self.sep_id]
            types = [0] * len(head) + [1 if query is not None else 0] * (len(body) + 1)
            on = [True] * len(head) + [False] * len(body) + [True]
            pos = [-1] * len(head) + list(range(len(body))) + [-1]
            rows.append((ids, types, on, pos))
        length = max(len(r[0]) for r in rows)

        def pad(k: int, fill: object, dtype: torch.dtype) -> Tensor:
            return torch.tensor([r[k] + [fill] * (length - len(r[k])) for r in rows], dtype=dtype)

        ids = pad(0, self.pad_id, torch.long)
        return EncodedBatch(
            input_ids=ids,
            token_type_ids=pad(1, 0, torch.long),
            unit_valid=ids != self.pad_id,
            always_on=pad(2, False, torch.bool),
            text_positions=pad(3, -1, torch.long),
        )


def encode_with_tokenizer(
    tokenizer: object,
    texts: Sequence[Sequence[str]],
    queries: Sequence[Sequence[str]] | None = None,
    *,
    max_length: int = 512,
) -> EncodedBatch:
    """Encode pre-split words with a Hugging Face *fast* tokenizer (e.g. BERT's WordPiece).

    The real-data counterpart of :meth:`WordVocab.encode`: ``[CLS] query [SEP] text [SEP]``
    with the text truncated to ``max_length`` (the query is kept). ``text_positions`` maps each
    sub-word position to the index of its word in the text (−1 for specials and the query), so
    SOP's token masks map back to document words (see :func:`~sop_cosmo.text.eraser.document_mask`).

    Parameters
    ----------
    tokenizer : PreTrainedTokenizerFast
        E.g. ``AutoTokenizer.from_pretrained(path)`` on a local folder (offline).
    texts : sequence of list of str
        Words of each text (e.g. ``EraserExample.tokens``).
    queries : sequence of list of str, optional
        Words of each query (e.g. ``EraserExample.query_tokens``), kept visible in every group.
    max_length : int
        Longest encoding in sub-word tokens.
    """
    if queries is not None and len(queries) != len(texts):
        raise ValueError(f"queries: expected {len(texts)} queries, got {len(queries)}")
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("tokenizer: needs a fast tokenizer (word_ids); load it with use_fast=True")
    args = (
        (list(map(list, queries)), list(map(list, texts))) if queries else (list(map(list, texts)),)
    )
    enc = tokenizer(
        *args,
        is_split_into_words=True,
        truncation="only_second" if queries else True,
        max_length=max_length,
        padding=True,
        return_tensors="pt",
    )
    text_seq = 1 if queries else 0
    n, length = enc["input_ids"].shape
    positions = torch.full((n, length), -1, dtype=torch.long)
    always_on = torch.zeros(n, length, dtype=torch.bool)
    for i in range(n):
        for j, (word, seq) in enumerate(zip(enc.word_ids(i), enc.sequence_ids(i), strict=True)):
            if seq == text_seq and word is not None:
                positions[i, j] = word
            elif word is None or seq != text_seq:
                always_on[i, j] = True  # specials and the query
    valid = enc["attention_mask"].bool()
    types = enc.get("token_type_ids", torch.zeros_like(enc["input_ids"]))
    return EncodedBatch(
        input_ids=enc["input_ids"],
        token_type_ids=types,
        unit_valid=valid,
        always_on=always_on & valid,
        text_positions=positions,
    )
