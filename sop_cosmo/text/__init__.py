"""SOP for text: a BERT adapter, ERASER (MultiRC) readers, and an offline conjunction demo.

Imports :mod:`sop_cosmo.core` and :mod:`sop_cosmo.attribution` only. See docs/text.md.
"""

from .conjunction import ConjunctionData, make_conjunction_data
from .eraser import (
    EraserExample,
    EraserFormatError,
    Evidence,
    document_mask,
    load_eraser,
    read_document,
    read_split,
    token_iou,
    token_prf,
)
from .model import (
    BertSOPBackbone,
    EncodedBatch,
    WordVocab,
    encode_with_tokenizer,
    load_bert,
    sop_bert_classifier,
    tiny_bert,
    top_group_masks,
)

__all__ = [
    "BertSOPBackbone",
    "ConjunctionData",
    "EncodedBatch",
    "EraserExample",
    "EraserFormatError",
    "Evidence",
    "WordVocab",
    "document_mask",
    "encode_with_tokenizer",
    "load_bert",
    "load_eraser",
    "make_conjunction_data",
    "read_document",
    "read_split",
    "sop_bert_classifier",
    "tiny_bert",
    "token_iou",
    "token_prf",
    "top_group_masks",
]
