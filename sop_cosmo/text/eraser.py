"""Readers for ERASER-format rationale data sets (MultiRC), and token-level overlap scores.

Assumed layout (the ERASER benchmark release, DeYoung et al. 2020), e.g. ``data/multirc/``::

    train.jsonl  val.jsonl  test.jsonl
    docs/<docid>                 one plain-text document per file, no extension added

Each ``.jsonl`` line is one annotation::

    {"annotation_id": "News-CNN-x.txt:3:1",
     "classification": "True",                   # or "False"
     "query": "What did he do? || He ran",       # question || candidate answer
     "query_type": null,
     "docids": null,                              # optional; MultiRC leaves it null
     "evidences": [[{"docid": "News-CNN-x.txt", "start_token": 12, "end_token": 20,
                     "start_sentence": 1, "end_sentence": 2, "text": "..."}], ...]}

Documents are whitespace-tokenised (one sentence per line); ``start_token``/``end_token`` index
the flattened document tokens, end exclusive. The document of an example is taken from
``docids`` if given, else from its evidences, else the ``annotation_id`` up to its first ``:``
(ERASER's MultiRC ids are ``<docid>:<question>:<answer>``). One document per example.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "MULTIRC_LABELS",
    "EraserExample",
    "EraserFormatError",
    "Evidence",
    "document_mask",
    "load_eraser",
    "read_document",
    "read_split",
    "token_iou",
    "token_prf",
]

MULTIRC_LABELS = ("False", "True")
SPLITS = ("train", "val", "test")


class EraserFormatError(ValueError):
    """A malformed ERASER file; the message names the file and line."""


@dataclass(frozen=True)
class Evidence:
    """One rationale span: tokens ``[start_token, end_token)`` of document ``docid``."""

    docid: str
    start_token: int
    end_token: int
    text: str


@dataclass
class EraserExample:
    """One annotation with its document.

    Attributes
    ----------
    annotation_id : str
    label : int
        Index of ``classification`` in the label names (MultiRC: False=0, True=1).
    label_name : str
    query : str
        Raw query (MultiRC: ``question || answer``).
    query_tokens : list of str
        Whitespace tokens of the query.
    docid : str
    tokens : list of str
        Whitespace tokens of the document.
    evidence_mask : ndarray of bool
        (len(tokens),) True on tokens inside any evidence span.
    evidences : tuple of Evidence
    query_type : str or None
    """

    annotation_id: str
    label: int
    label_name: str
    query: str
    query_tokens: list[str]
    docid: str
    tokens: list[str]
    evidence_mask: np.ndarray
    evidences: tuple[Evidence, ...]
    query_type: str | None


def read_document(data_dir: str | Path, docid: str) -> list[str]:
    """Whitespace tokens of ``data_dir/docs/<docid>`` (lines flattened in order)."""
    path = Path(data_dir) / "docs" / docid
    if not path.is_file():
        raise FileNotFoundError(f"{path}: document {docid!r} not found")
    return path.read_text(encoding="utf-8").split()


def _where(path: Path, lineno: int) -> str:
    return f"{path}:{lineno}"


def _parse_evidences(raw: object, where: str) -> list[Evidence]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise EraserFormatError(f"{where}: 'evidences' must be a list of lists, got {raw!r:.80}")
    out = []
    # ERASER nests evidences: a list of alternative evidence sets, each a list of spans.
    for group in raw:
        for ev in group if isinstance(group, list) else [group]:
            if not isinstance(ev, dict):
                raise EraserFormatError(f"{where}: evidence must be an object, got {ev!r:.80}")
            try:
                out.append(
                    Evidence(
                        docid=str(ev["docid"]),
                        start_token=int(ev["start_token"]),
                        end_token=int(ev["end_token"]),
                        text=str(ev.get("text", "")),
                    )
                )
            except KeyError as err:
                raise EraserFormatError(f"{where}: evidence lacks key {err.args[0]!r}") from None
            except (TypeError, ValueError):
                raise EraserFormatError(
                    f"{where}: evidence has non-integer token indices"
                ) from None
    return out


def read_split(
    data_dir: str | Path,
    split: str,
    *,
    label_names: Sequence[str] = MULTIRC_LABELS,
    check_evidence_text: bool = True,
) -> list[EraserExample]:
    """Read ``data_dir/<split>.jsonl`` with its documents.

    Parameters
    ----------
    data_dir : str or Path
        Folder holding the split files and ``docs/``.
    split : str
        File stem, e.g. ``"train"``, ``"val"`` or ``"test"``.
    label_names : sequence of str
        ``classification`` values in label-id order.
    check_evidence_text : bool
        Require each evidence's ``text`` (when non-empty) to equal its document tokens joined
        by single spaces.

    Raises
    ------
    FileNotFoundError
        When the split file is missing.
    EraserFormatError
        Bad JSON, a missing key, an unknown label, a missing document, more than one document,
        or an evidence span out of range or not matching its text; the message gives
        ``file:line``.
    """
    data_dir = Path(data_dir)
    path = data_dir / f"{split}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found")
    docs: dict[str, list[str]] = {}
    examples = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = _where(path, lineno)
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise EraserFormatError(f"{where}: invalid JSON ({err.msg})") from None
            if not isinstance(rec, dict):
                raise EraserFormatError(f"{where}: expected a JSON object")
            for key in ("annotation_id", "classification", "query"):
                if key not in rec:
                    raise EraserFormatError(f"{where}: missing key {key!r}")
            label_name = str(rec["classification"])
            if label_name not in label_names:
                raise EraserFormatError(
                    f"{where}: classification {label_name!r} not in {tuple(label_names)}"
                )
            evidences = _parse_evidences(rec.get("evidences"), where)
            docids = rec.get("docids") or sorted({e.docid for e in evidences})
            if not docids:
                docids = [str(rec["annotation_id"]).split(":")[0]]
            if len(set(docids)) != 1:
                raise EraserFormatError(f"{where}: expected one document, got {sorted(docids)}")
            docid = str(docids[0])
            if docid not in docs:
                try:
                    docs[docid] = read_document(data_dir, docid)
                except FileNotFoundError as err:
                    raise EraserFormatError(f"{where}: {err}") from None
            tokens = docs[docid]
            mask = np.zeros(len(tokens), dtype=bool)
            for ev in evidences:
                if ev.docid != docid:
                    raise EraserFormatError(f"{where}: evidence docid {ev.docid!r} != {docid!r}")
                if not 0 <= ev.start_token < ev.end_token <= len(tokens):
                    raise EraserFormatError(
                        f"{where}: evidence span [{ev.start_token}, {ev.end_token}) out of range "
                        f"for document {docid!r} with {len(tokens)} tokens"
                    )
                span = " ".join(tokens[ev.start_token : ev.end_token])
                if check_evidence_text and ev.text and " ".join(ev.text.split()) != span:
                    raise EraserFormatError(
                        f"{where}: evidence text {ev.text!r:.60} does not match document tokens "
                        f"{span!r:.60} (pass check_evidence_text=False to skip this check)"
                    )
                mask[ev.start_token : ev.end_token] = True
            query = str(rec["query"])
            examples.append(
                EraserExample(
                    annotation_id=str(rec["annotation_id"]),
                    label=list(label_names).index(label_name),
                    label_name=label_name,
                    query=query,
                    query_tokens=query.split(),
                    docid=docid,
                    tokens=tokens,
                    evidence_mask=mask,
                    evidences=tuple(evidences),
                    query_type=rec.get("query_type"),
                )
            )
    return examples


def load_eraser(
    data_dir: str | Path,
    splits: Iterable[str] = SPLITS,
    **kwargs: object,
) -> dict[str, list[EraserExample]]:
    """Read several splits (default train/val/test) of an ERASER folder; see :func:`read_split`."""
    return {s: read_split(data_dir, s, **kwargs) for s in splits}  # type: ignore[arg-type]


def _as_bool(mask: object, n: int | None, name: str) -> np.ndarray:
    arr = np.asarray(mask)
    arr = arr if arr.dtype == bool else arr != 0
    if arr.ndim != 1 or (n is not None and arr.shape != (n,)):
        want = f"({n},)" if n is not None else "1-D"
        raise ValueError(f"{name}: expected a token mask of shape {want}, got {arr.shape}")
    return arr


def token_prf(pred: object, gold: object) -> tuple[float, float, float]:
    """Token-level precision, recall and F1 of a predicted token set against gold.

    Both are boolean masks of the same length (or 0/1 arrays). Empty sets give 0 for the
    undefined ratio, except that two empty sets agree perfectly (1, 1, 1).
    """
    g = _as_bool(gold, None, "gold")
    p = _as_bool(pred, g.shape[0], "pred")
    tp, n_p, n_g = int((p & g).sum()), int(p.sum()), int(g.sum())
    if n_p == 0 and n_g == 0:
        return 1.0, 1.0, 1.0
    prec = tp / n_p if n_p else 0.0
    rec = tp / n_g if n_g else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec > 0 else 0.0
    return prec, rec, f1


def token_iou(pred: object, gold: object) -> float:
    """Token-level intersection over union |P ∩ G| / |P ∪ G|; two empty sets give 1.0.

    ``pred`` and ``gold`` are boolean (or 0/1) masks over the same tokens.
    """
    g = _as_bool(gold, None, "gold")
    p = _as_bool(pred, g.shape[0], "pred")
    union = int((p | g).sum())
    return 1.0 if union == 0 else int((p & g).sum()) / union


def document_mask(unit_mask: object, text_positions: object, n_tokens: int) -> np.ndarray:
    """Map a mask over encoded positions (L,) back to the document's words (n_tokens,).

    ``text_positions`` (L,) gives each position's word index (−1 for specials, query and
    padding), as in ``EncodedBatch.text_positions``. A word is selected when any of its
    sub-word positions is; words cut off by truncation are never selected.
    """
    m = _as_bool(np.asarray(unit_mask), None, "unit_mask")
    pos = np.asarray(text_positions)
    if pos.shape != m.shape:
        raise ValueError(
            f"text_positions: expected shape {m.shape} like unit_mask, got {pos.shape}"
        )
    if pos.size and pos.max() >= n_tokens:
        raise ValueError(
            f"n_tokens: {n_tokens} is too small for word index {int(pos.max())} in text_positions"
        )
    out = np.zeros(n_tokens, dtype=bool)
    out[pos[m & (pos >= 0)]] = True
    return out
