import numpy as np
import pytest

from sop_cosmo.text import make_conjunction_data


def test_balance_and_labels():
    d = make_conjunction_data(601, seed=3)
    assert len(d) == 601
    assert d.labels.sum() == 300
    counts = [(d.has_a & ~d.has_b).sum(), (~d.has_a & d.has_b).sum(), (~d.has_a & ~d.has_b).sum()]
    assert sum(counts) == 301 and max(counts) - min(counts) <= 1
    for s, y, pa, pb in zip(d.sentences, d.labels, d.pos_a, d.pos_b, strict=True):
        assert 6 <= len(s) <= 14
        assert y == int("alpha" in s and "beta" in s)
        assert s.count("alpha") == (pa >= 0) and s.count("beta") == (pb >= 0)
        if pa >= 0:
            assert s[pa] == "alpha"
        if pb >= 0:
            assert s[pb] == "beta"
    again = make_conjunction_data(601, seed=3)
    assert again.sentences == d.sentences and np.array_equal(again.labels, d.labels)


def test_bad_arguments():
    with pytest.raises(ValueError, match="word_a"):
        make_conjunction_data(10, word_a="the")
    with pytest.raises(ValueError, match="min_len"):
        make_conjunction_data(10, min_len=5, max_len=3)
