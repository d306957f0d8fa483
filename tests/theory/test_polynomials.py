"""Tests for the theory polynomials and the data sampler."""

from __future__ import annotations

import numpy as np
import pytest

from sop_cosmo.theory.data import all_ones, inclusion_probability, sample_inputs
from sop_cosmo.theory.polynomials import (
    Polynomial,
    all_subsets,
    binomial,
    binomial_blocks,
    monomial,
    polynomial_by_name,
)


def test_all_subsets_order() -> None:
    s = all_subsets(3)
    assert s.shape == (8, 3)
    assert s.dtype == np.bool_
    # Row r contains feature i iff bit i of r is set.
    for r in range(8):
        assert [bool(r >> i & 1) for i in range(3)] == s[r].tolist()
    assert not s[0].any()
    assert s[-1].all()
    assert len({tuple(row) for row in s.tolist()}) == 8


@pytest.mark.parametrize("d", [0, -1, 21])
def test_all_subsets_rejects_bad_d(d: int) -> None:
    with pytest.raises(ValueError, match="d"):
        all_subsets(d)


def test_monomial() -> None:
    p = monomial(4)
    assert p.terms == ((0, 1, 2, 3),)
    x = all_subsets(4)
    y = p.evaluate(x)
    assert y.dtype == np.float64
    assert y.shape == (16,)
    assert y[-1] == 1.0
    assert y[:-1].sum() == 0.0
    assert monomial(1).evaluate(np.array([[0.0], [1.0]])).tolist() == [0.0, 1.0]


@pytest.mark.parametrize(
    ("d", "blocks"),
    [
        (2, ((0,), (), (1,))),
        (3, ((0,), (1,), (2,))),
        (4, ((0,), (1, 2), (3,))),
        (6, ((0, 1), (2, 3), (4, 5))),
        (7, ((0, 1), (2, 3, 4), (5, 6))),
    ],
)
def test_binomial_blocks(d: int, blocks: tuple[tuple[int, ...], ...]) -> None:
    assert binomial_blocks(d) == blocks


@pytest.mark.parametrize("d", range(2, 17))
def test_binomial_blocks_partition(d: int) -> None:
    s1, s2, s3 = binomial_blocks(d)
    assert len(s1) == len(s3) == (d - d // 3) // 2  # equal-size terms
    assert d // 3 <= len(s2) <= d // 3 + 1
    assert s1 and s3
    assert s1 + s2 + s3 == tuple(range(d))
    p = binomial(d)
    assert p.terms == (s1 + s2, s2 + s3)


def test_binomial_evaluate() -> None:
    p = binomial(3)  # x0 x1 + x1 x2
    x = np.array([[1, 1, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1], [0, 0, 0]])
    assert p.evaluate(x).tolist() == [2.0, 1.0, 1.0, 0.0, 0.0]
    assert binomial(2).evaluate(np.array([[1, 0], [1, 1]], dtype=bool)).tolist() == [1.0, 2.0]


def test_evaluate_matches_naive_product() -> None:
    p = Polynomial(5, ((0, 3), (1, 2, 4), (2,)))
    x = all_subsets(5).astype(np.float32)
    naive = sum(np.prod(x[:, list(t)], axis=1) for t in p.terms)
    np.testing.assert_array_equal(p.evaluate(x), naive)


def test_polynomial_normalises_terms() -> None:
    p = Polynomial(4, [[3, 1], (0,)])
    assert p.terms == ((1, 3), (0,))
    assert p.n_terms == 2
    assert p.max_term_size == 2
    assert p.term_masks().tolist() == [[False, True, False, True], [True, False, False, False]]
    assert p == Polynomial(4, ((1, 3), (0,)))
    with pytest.raises(AttributeError):
        p.d = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("d", "terms", "match"),
    [
        (0, ((0,),), "d"),
        (3, (), "terms"),
        (3, ((),), "terms"),
        (3, ((0, 0),), "terms"),
        (3, ((0, 3),), "terms"),
        (3, ((-1,),), "terms"),
        (3, ((0, 1), (1, 0)), "terms"),
    ],
)
def test_polynomial_rejects_bad_input(d: int, terms: tuple, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Polynomial(d, terms)


def test_constructors_reject_bad_d() -> None:
    with pytest.raises(ValueError, match="d"):
        monomial(0)
    with pytest.raises(ValueError, match="d=1"):
        binomial(1)
    with pytest.raises(ValueError, match="name"):
        polynomial_by_name("trinomial", 3)
    assert polynomial_by_name("binomial", 5) == binomial(5)


def test_evaluate_rejects_bad_x() -> None:
    p = monomial(3)
    with pytest.raises(ValueError, match="x"):
        p.evaluate(np.ones((4, 2)))
    with pytest.raises(ValueError, match="x"):
        p.evaluate(np.ones(3))
    with pytest.raises(ValueError, match="x"):
        p.evaluate(np.full((2, 3), 0.5))


@pytest.mark.parametrize("poly", [monomial(1), monomial(8), binomial(2), binomial(9)])
def test_sample_inputs(poly: Polynomial) -> None:
    rng = np.random.default_rng(0)
    x, y = sample_inputs(poly, 20_000, rng)
    assert x.shape == (20_000, poly.d)
    assert y.shape == (20_000,)
    assert x.dtype == np.float32
    assert y.dtype == np.float32
    assert set(np.unique(x).tolist()) <= {0.0, 1.0}
    np.testing.assert_array_equal(y, poly.evaluate(x))
    rho = inclusion_probability(poly)
    assert rho == pytest.approx(0.5 ** (1 / poly.max_term_size))
    assert x.mean() == pytest.approx(rho, abs=0.01)
    # A largest term is active about half the time.
    largest = max(poly.terms, key=len)
    assert x[:, list(largest)].all(axis=1).mean() == pytest.approx(0.5, abs=0.02)


def test_sample_inputs_seeded_and_validated() -> None:
    p = binomial(5)
    x1, y1 = sample_inputs(p, 10, 3)
    x2, y2 = sample_inputs(p, 10, np.random.default_rng(3))
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    with pytest.raises(ValueError, match="n"):
        sample_inputs(p, 0, 0)


def test_all_ones() -> None:
    x = all_ones(4)
    assert x.shape == (1, 4)
    assert x.dtype == np.float32
    assert (x == 1).all()
    assert binomial(4).evaluate(x).tolist() == [2.0]
    with pytest.raises(ValueError, match="d"):
        all_ones(0)
