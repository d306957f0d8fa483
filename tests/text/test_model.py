import torch

from sop_cosmo.core import SOPConfig
from sop_cosmo.text import (
    BertSOPBackbone,
    WordVocab,
    encode_with_tokenizer,
    load_bert,
    sop_bert_classifier,
    tiny_bert,
    top_group_masks,
)


def _batch():
    vocab = WordVocab.build(["a b c d e f g h", "x y z"])
    enc = vocab.encode([["a", "b", "c", "d", "e"], ["x", "y"]], queries=[["q", "w"], ["z"]])
    return vocab, enc


def test_backbone_matches_hf_forward():
    # The head must read CLS -> pooler -> classifier exactly as BertForSequenceClassification.
    bert = tiny_bert(30, 3, hidden_size=32, num_layers=1, seed=1).eval()
    ids = torch.randint(5, 30, (3, 7))
    ids[2, 4:] = 0
    valid = ids != 0
    backbone = BertSOPBackbone(bert)
    ref = bert(input_ids=ids, attention_mask=valid.long()).logits
    torch.testing.assert_close(backbone.forward_masked(ids, valid.float())[0], ref)


def test_faithful_with_padding_and_always_on():
    vocab, enc = _batch()
    bert = tiny_bert(len(vocab) + 5, 2, hidden_size=32, num_layers=1, seed=0)
    for mask_embedding in ("zero", "mask_token"):
        model = sop_bert_classifier(
            bert,
            sop_config=SOPConfig(n_groups=3, keep_fraction=0.3, n_heads=2),
            mask_embedding=mask_embedding,
        ).eval()
        out = model(enc.stacked, unit_valid=enc.unit_valid, always_on=enc.always_on)
        torch.testing.assert_close(out.contributions.sum(1), out.prediction, rtol=0, atol=1e-5)
        masks = out.masks > 0.5
        # Padding never grouped; the query segment ([CLS] q w [SEP]) in every group.
        assert not (masks & ~enc.unit_valid[:, None]).any()
        assert (masks | ~enc.always_on[:, None]).all()
        assert top_group_masks(out).shape == enc.input_ids.shape


def test_gradient_reaches_generator():
    vocab, enc = _batch()
    bert = tiny_bert(len(vocab), 2, hidden_size=32, num_layers=1, seed=0)
    model = sop_bert_classifier(bert, sop_config=SOPConfig(n_groups=3, keep_fraction=0.3))
    model.train()
    out = model(enc.input_ids, unit_valid=enc.unit_valid, always_on=enc.always_on)
    torch.nn.functional.cross_entropy(out.prediction, torch.tensor([0, 1])).backward()
    assert model.generator.query.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.backbone.parameters())


def test_load_bert_from_local_folder(tmp_path):
    bert = tiny_bert(20, 2, hidden_size=16, num_layers=1, num_heads=1, seed=3).eval()
    bert.save_pretrained(tmp_path)
    loaded = load_bert(tmp_path).eval()
    ids = torch.randint(5, 20, (2, 6))
    torch.testing.assert_close(loaded(input_ids=ids).logits, bert(input_ids=ids).logits)
    assert load_bert(tmp_path, num_labels=2).config.num_labels == 2


def test_vocab_encoding():
    vocab, enc = _batch()
    assert enc.input_ids[0, 0] == vocab.cls_id
    assert enc.token_type_ids[0].tolist()[:4] == [0, 0, 0, 0]
    assert enc.text_positions[0].tolist()[4:9] == [0, 1, 2, 3, 4]
    assert enc.unit_valid.sum(1).tolist() == [10, 6]
    assert vocab.ids(["A", "never-seen"]) == [vocab.stoi["a"], vocab.unk_id]


def test_masking_modes_differ_in_gradient_to_dropped_tokens():
    # Embedding masking keeps dropped tokens attended, so the straight-through gradient reaches
    # their scores (they can be pulled into a group); attention masking cuts them off.
    vocab, enc = _batch()
    bert = tiny_bert(len(vocab), 2, hidden_size=32, num_layers=1, seed=0, dropout=0.0)
    grads = {}
    for masking in ("embedding", "attention"):
        torch.manual_seed(0)
        model = sop_bert_classifier(
            bert, sop_config=SOPConfig(n_groups=3, keep_fraction=0.3), masking=masking
        ).train()
        out = model(enc.input_ids, unit_valid=enc.unit_valid, always_on=enc.always_on)
        out.scores.retain_grad()
        out.prediction[:, 1].sum().backward()
        dropped = (out.masks < 0.5) & enc.unit_valid[:, None]
        grads[masking] = out.scores.grad[dropped].abs()
        assert dropped.any()
    assert grads["embedding"].max() > 1e-6
    assert grads["attention"].max() == 0.0


def test_attention_masking_equals_shorter_input():
    # With attention masking a masked-out suffix is exactly absent: same logits as the
    # truncated sentence (position ids are unchanged for the kept prefix).
    bert = tiny_bert(30, 2, hidden_size=32, num_layers=2, seed=2).eval()
    ids = torch.randint(5, 30, (1, 8))
    mask = torch.ones(1, 8)
    mask[0, 5:] = 0
    bb = BertSOPBackbone(bert, masking="attention")
    short = bert(input_ids=ids[:, :5]).logits
    torch.testing.assert_close(bb.forward_masked(ids, mask)[0], short)
    emb = BertSOPBackbone(bert, masking="embedding").forward_masked(ids, mask)[0]
    assert not torch.allclose(emb, short)


def test_bad_backbone_options():
    bert = tiny_bert(20, 2, hidden_size=16, num_layers=1, num_heads=1)
    for kwargs, name in (({"masking": "blur"}, "masking"), ({"unit_features": "x"}, "unit_")):
        try:
            BertSOPBackbone(bert, **kwargs)
        except ValueError as err:
            assert name in str(err)
        else:
            raise AssertionError(f"{kwargs} accepted")


def test_encode_with_tokenizer_maps_words():
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat"]
    tok = BertTokenizerFast(vocab={w: i for i, w in enumerate([*words, "##s", "where"])})
    enc = encode_with_tokenizer(
        tok, [["the", "cats", "sat"], ["on", "the", "mat", "mat"]], [["where"], ["cat"]]
    )
    # [CLS] where [SEP] the cat ##s sat [SEP]: "cats" is two pieces of word 1.
    assert enc.input_ids[0].tolist() == [2, 11, 3, 5, 6, 10, 7, 3]
    assert enc.text_positions[0].tolist() == [-1, -1, -1, 0, 1, 1, 2, -1]
    assert enc.always_on[0].tolist() == [True, True, True, False, False, False, False, True]
    assert enc.token_type_ids[0].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert not enc.unit_valid[0].all() or enc.unit_valid[1].all()
    assert not (enc.always_on & ~enc.unit_valid).any()
    short = encode_with_tokenizer(tok, [["the", "cat", "sat", "on"]], [["where"]], max_length=6)
    assert short.text_positions[0].tolist() == [-1, -1, -1, 0, 1, -1]  # text truncated
