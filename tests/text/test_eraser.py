import json

import numpy as np
import pytest
import torch

from sop_cosmo.text import (
    EraserFormatError,
    WordVocab,
    document_mask,
    load_eraser,
    read_split,
    token_iou,
    token_prf,
)

DOC = "The cat sat on the mat .\nIt was warm and the sun shone .\n"


def _record(aid, label, spans, **extra):
    ev = [
        [{"docid": "story.txt", "start_token": s, "end_token": e, "text": t}] for s, e, t in spans
    ]
    rec = {
        "annotation_id": aid,
        "classification": label,
        "query": "Where did the cat sit ? || on the mat",
        "query_type": None,
        "docids": None,
        "evidences": ev,
    }
    rec.update(extra)
    return json.dumps(rec)


def _write(tmp_path, lines, split="val"):
    (tmp_path / "docs").mkdir(exist_ok=True)
    (tmp_path / "docs" / "story.txt").write_text(DOC)
    (tmp_path / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_reads_examples_and_evidence_masks(tmp_path):
    _write(
        tmp_path,
        [
            _record("story.txt:0:0", "True", [(0, 3, "The cat sat"), (4, 6, "the mat")]),
            _record("story.txt:0:1", "False", [(7, 9, "It was")]),
            _record("story.txt:1:0", "False", [], evidences=None),  # docid from annotation_id
        ],
    )
    for split in ("train", "test"):
        _write(tmp_path, [_record("story.txt:0:0", "True", [(0, 1, "The")])], split)
    ex = read_split(tmp_path, "val")
    assert [e.label for e in ex] == [1, 0, 0]
    assert ex[0].tokens[:3] == ["The", "cat", "sat"] and len(ex[0].tokens) == 15
    assert ex[0].evidence_mask.nonzero()[0].tolist() == [0, 1, 2, 4, 5]
    assert ex[0].query_tokens[-3:] == ["on", "the", "mat"]
    assert ex[2].docid == "story.txt" and not ex[2].evidence_mask.any()
    assert set(load_eraser(tmp_path)) == {"train", "val", "test"}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", r"val\.jsonl:2: invalid JSON"),
        (_record("x:0:0", "Maybe", []), r"val\.jsonl:2: classification 'Maybe'"),
        (_record("x:0:0", "True", [(10, 99, "x")]), r"val\.jsonl:2: evidence span \[10, 99\)"),
        (_record("x:0:0", "True", [(0, 2, "A dog")]), r"val\.jsonl:2: evidence text"),
        ('{"annotation_id": "a", "query": "q"}', r"val\.jsonl:2: missing key 'classification'"),
    ],
)
def test_errors_name_file_and_line(tmp_path, line, message):
    _write(tmp_path, [_record("story.txt:0:0", "True", [(0, 1, "The")]), line])
    with pytest.raises(EraserFormatError, match=message):
        read_split(tmp_path, "val")


def test_missing_document_and_split(tmp_path):
    _write(tmp_path, [_record("gone.txt:0:0", "True", [], evidences=None)])
    with pytest.raises(EraserFormatError, match=r"val\.jsonl:1: .*gone\.txt"):
        read_split(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match=r"train\.jsonl"):
        read_split(tmp_path, "train")


def test_token_iou_and_prf_hand_values():
    gold = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    pred = np.array([0, 1, 1, 1, 0, 0], dtype=bool)
    assert token_iou(pred, gold) == pytest.approx(2 / 4)
    assert token_prf(pred, gold) == pytest.approx((2 / 3, 2 / 3, 2 / 3))
    assert token_iou(gold, gold) == 1.0
    assert token_iou(~gold, gold) == 0.0
    assert token_iou(np.zeros(3, bool), np.zeros(3, bool)) == 1.0
    assert token_prf([0, 0, 0], [1, 0, 0]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="pred"):
        token_iou(np.ones(4, bool), gold)


def test_document_mask_and_evidence_iou_end_to_end(tmp_path):
    # Reader -> encoder -> a group mask over encoded positions -> document words -> IoU.
    _write(tmp_path, [_record("story.txt:0:0", "True", [(0, 3, "The cat sat"), (4, 6, "the mat")])])
    (ex,) = read_split(tmp_path, "val")
    vocab = WordVocab.build([ex.tokens, ex.query_tokens])
    enc = vocab.encode([ex.tokens], queries=[ex.query_tokens])
    pos = enc.text_positions[0]
    assert (pos >= 0).sum() == len(ex.tokens)
    # A group holding exactly the evidence words (plus the always-visible query) scores 1.
    group = enc.always_on[0] | torch.from_numpy(ex.evidence_mask)[pos.clamp(min=0)] & (pos >= 0)
    doc = document_mask(group, pos, len(ex.tokens))
    assert doc.tolist() == ex.evidence_mask.tolist()
    assert token_iou(doc, ex.evidence_mask) == 1.0
    # Dropping one evidence word and adding one other word: IoU 4 / 6.
    group[pos.tolist().index(0)] = False
    group[pos.tolist().index(8)] = True
    assert token_iou(document_mask(group, pos, len(ex.tokens)), ex.evidence_mask) == 4 / 6
    with pytest.raises(ValueError, match="n_tokens"):
        document_mask(group, pos, 3)
    with pytest.raises(ValueError, match="text_positions"):
        document_mask(group, pos[:-1], len(ex.tokens))
