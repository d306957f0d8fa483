"""Tests for grouped attribution errors and the per-feature LP optima."""

from __future__ import annotations

import itertools
import time
from math import comb

import numpy as np
import pytest
from scipy.optimize import OptimizeResult

import sop_cosmo.theory.lp as lp_mod
from sop_cosmo.theory.lp import (
    GroupedError,
    error_table,
    grouped_error,
    grouped_residuals,
    oracle_groups,
    per_feature_optimum,
    subset_targets,
)
from sop_cosmo.theory.polynomials import Polynomial, all_subsets, binomial, monomial

KINDS = ("insertion", "deletion")
OBJECTIVES = ("worst", "total")


def _naive_error(
    poly: Polynomial, groups: np.ndarray, alpha: np.ndarray, kind: str
) -> tuple[float, float]:
    """Loop-over-subsets reference for grouped_error, straight from the definitions."""
    d = poly.d
    full = poly.evaluate(np.ones((1, d)))[0]
    res = []
    for bits in itertools.product([0, 1], repeat=d):
        s = np.array(bits, dtype=bool)
        if kind == "insertion":
            target = poly.evaluate(s[None].astype(float))[0]
            credit = sum(a for g, a in zip(groups, alpha, strict=True) if not (g & ~s).any())
        else:
            target = full - poly.evaluate((~s)[None].astype(float))[0]
            credit = sum(a for g, a in zip(groups, alpha, strict=True) if (g & s).any())
        res.append(abs(target - credit))
    return max(res), sum(res)


def _deletion_total_monomial(d: int) -> float:
    """min_a sum_{k>=1} C(d,k) |1 - k a|; convex piecewise linear, kinks at a = 1/j."""
    return min(sum(comb(d, k) * abs(1 - k / j) for k in range(1, d + 1)) for j in range(1, d + 1))


# --- hand-derived optima -------------------------------------------------------------


@pytest.mark.parametrize("d", range(1, 9))
def test_monomial_insertion_worst(d: int) -> None:
    opt = per_feature_optimum(monomial(d), "insertion", "worst")
    assert opt.value == pytest.approx((d - 1) / (2 * d - 1), abs=1e-9)
    # The optimum is unique: alpha_i = 1 / (2d - 1).
    np.testing.assert_allclose(opt.alpha, 1 / (2 * d - 1), atol=1e-8)
    assert opt.alpha.shape == (d,)
    assert (opt.kind, opt.objective) == ("insertion", "worst")


def test_monomial_small_values() -> None:
    assert per_feature_optimum(monomial(1), "insertion").value == pytest.approx(0, abs=1e-12)
    assert per_feature_optimum(monomial(2), "insertion").value == pytest.approx(1 / 3)
    assert per_feature_optimum(monomial(3), "insertion").value == pytest.approx(2 / 5)
    assert per_feature_optimum(monomial(2), "deletion").value == pytest.approx(1 / 3)
    assert per_feature_optimum(monomial(2), "insertion", "total").value == pytest.approx(1)


@pytest.mark.parametrize("d", range(1, 9))
def test_monomial_deletion_worst(d: int) -> None:
    opt = per_feature_optimum(monomial(d), "deletion", "worst")
    assert opt.value == pytest.approx((d - 1) / (d + 1), abs=1e-9)
    np.testing.assert_allclose(opt.alpha, 2 / (d + 1), atol=1e-8)


@pytest.mark.parametrize("d", range(1, 11))
def test_monomial_total(d: int) -> None:
    # Insertion: |1 - sum(alpha)| + sum_i |alpha_i| >= 1 (attained by alpha = 0) for d >= 2.
    ins = per_feature_optimum(monomial(d), "insertion", "total").value
    assert ins == pytest.approx(0.0 if d == 1 else 1.0, abs=1e-8)
    dele = per_feature_optimum(monomial(d), "deletion", "total").value
    assert dele == pytest.approx(_deletion_total_monomial(d), abs=1e-7)


def test_binomial_additive_and_overlapping() -> None:
    for kind, objective in itertools.product(KINDS, OBJECTIVES):
        opt2 = per_feature_optimum(binomial(2), kind, objective)
        assert opt2.value == pytest.approx(0.0, abs=1e-9)
        np.testing.assert_allclose(opt2.alpha, [1.0, 1.0], atol=1e-8)
        assert per_feature_optimum(binomial(3), kind, objective).value > 0.1


def test_per_feature_grows_with_d_and_is_fast() -> None:
    worst: dict[str, list[float]] = {k: [] for k in KINDS}
    total: dict[str, list[float]] = {k: [] for k in KINDS}
    for d in range(1, 13):
        for kind in KINDS:
            for objective, store in (("worst", worst), ("total", total)):
                start = time.perf_counter()
                value = per_feature_optimum(monomial(d), kind, objective).value
                elapsed = time.perf_counter() - start
                if d == 12:
                    assert elapsed < 2.0, (kind, objective, elapsed)
                store[kind].append(value)
    for kind in KINDS:
        assert np.all(np.diff(worst[kind]) > 1e-9), worst[kind]
    assert np.all(np.diff(total["deletion"]) > 1e-9), total["deletion"]
    # Insertion total is pinned at 1 from d = 2 on (see test_monomial_total).
    assert np.all(np.diff(total["insertion"]) > -1e-9), total["insertion"]


def test_binomial_per_feature_non_decreasing() -> None:
    # Plateaus occur (e.g. insertion worst is 0.8 at d = 4 and d = 5), so only >=.
    assert per_feature_optimum(binomial(3), "insertion").value == pytest.approx(2 / 3)
    for kind, objective in itertools.product(KINDS, OBJECTIVES):
        values = [per_feature_optimum(binomial(d), kind, objective).value for d in range(2, 13)]
        assert np.all(np.diff(values) > -1e-9), (kind, objective, values)
        assert values[-1] > values[1] > 0


@pytest.mark.parametrize(("kind", "objective"), list(itertools.product(KINDS, OBJECTIVES)))
def test_binomial_d12_is_fast(kind: str, objective: str) -> None:
    start = time.perf_counter()
    opt = per_feature_optimum(binomial(12), kind, objective)
    assert time.perf_counter() - start < 2.0
    assert opt.value > 0


# --- grouped errors --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["monomial", "binomial"])
@pytest.mark.parametrize("kind", KINDS)
def test_oracle_grouped_is_exact(name: str, kind: str) -> None:
    for d in range(1 if name == "monomial" else 2, 13):
        poly = monomial(d) if name == "monomial" else binomial(d)
        groups, alpha = oracle_groups(poly)
        assert groups.shape == (poly.n_terms, d)
        assert groups.dtype == np.bool_
        np.testing.assert_array_equal(alpha, np.ones(poly.n_terms))
        err = grouped_error(poly, groups, alpha, kind)
        assert isinstance(err, GroupedError)
        assert err.worst == pytest.approx(0.0, abs=1e-12)
        assert err.total == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("poly", [monomial(3), binomial(3), binomial(6), monomial(10)])
@pytest.mark.parametrize(("kind", "objective"), list(itertools.product(KINDS, OBJECTIVES)))
def test_lp_matches_grouped_error(poly: Polynomial, kind: str, objective: str) -> None:
    opt = per_feature_optimum(poly, kind, objective)
    err = grouped_error(poly, np.eye(poly.d, dtype=bool), opt.alpha, kind)
    assert getattr(err, objective) == pytest.approx(opt.value, rel=1e-7, abs=1e-7)
    # The other objective can only be worse than its own optimum.
    other = "total" if objective == "worst" else "worst"
    assert getattr(err, other) >= per_feature_optimum(poly, kind, other).value - 1e-7


@pytest.mark.parametrize("kind", KINDS)
def test_grouped_error_matches_naive(kind: str) -> None:
    rng = np.random.default_rng(1)
    poly = Polynomial(6, ((0, 1, 2), (2, 3), (4,), (1, 5)))
    for _ in range(5):
        groups = rng.random((4, 6)) < 0.35  # overlapping, possibly empty groups
        alpha = rng.normal(size=4)
        err = grouped_error(poly, groups, alpha, kind)
        worst, total = _naive_error(poly, groups, alpha, kind)
        assert err.worst == pytest.approx(worst)
        assert err.total == pytest.approx(total)


def test_grouped_error_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    poly = binomial(9)
    groups = rng.random((7, 9)) < 0.3
    alpha = rng.normal(size=7)
    for kind in KINDS:
        full = grouped_residuals(poly, groups, alpha, kind)
        monkeypatch.setattr(lp_mod, "_CHUNK_ELEMENTS", 50)
        chunked = grouped_residuals(poly, groups, alpha, kind)
        monkeypatch.undo()
        np.testing.assert_allclose(chunked, full)


def test_grouped_error_hand_values() -> None:
    poly = monomial(2)
    # Per-feature alpha = (1/3, 1/3): insertion residuals 0, -1/3, -1/3, 1/3.
    err = grouped_error(poly, np.eye(2, dtype=bool), [1 / 3, 1 / 3], "insertion")
    assert err.worst == pytest.approx(1 / 3)
    assert err.total == pytest.approx(1.0)
    # No groups at all: the residual is the target itself.
    err = grouped_error(poly, np.zeros((0, 2), dtype=bool), [], "deletion")
    assert err == pytest.approx((1.0, 3.0))


def test_subset_targets() -> None:
    poly = binomial(3)  # x0 x1 + x1 x2, subsets in binary order
    np.testing.assert_array_equal(subset_targets(poly, "insertion"), [0, 0, 0, 1, 0, 0, 1, 2])
    # Deleting S leaves p(1_{[d] \ S}); the target is p(1) minus that.
    np.testing.assert_array_equal(subset_targets(poly, "deletion"), [0, 1, 2, 2, 1, 2, 2, 2])
    assert all_subsets(3)[3].tolist() == [True, True, False]


def test_grouped_error_d16_is_fast() -> None:
    poly = binomial(16)
    groups, alpha = oracle_groups(poly)
    groups = np.vstack([groups, np.eye(16, dtype=bool)])
    alpha = np.concatenate([alpha, np.zeros(16)])
    start = time.perf_counter()
    for kind in KINDS:
        assert grouped_error(poly, groups, alpha, kind).worst == pytest.approx(0.0, abs=1e-12)
    assert time.perf_counter() - start < 1.0


# --- error table -----------------------------------------------------------------------


def test_error_table() -> None:
    rows = error_table(4)
    keys = {
        "function",
        "kind",
        "d",
        "per_feature_error",
        "per_feature_total_error",
        "oracle_grouped_error",
    }
    assert all(set(r) == keys for r in rows)
    assert len(rows) == 2 * 4 + 2 * 3
    assert [(r["function"], r["kind"], r["d"]) for r in rows[:5]] == [
        ("monomial", "insertion", 1),
        ("monomial", "insertion", 2),
        ("monomial", "insertion", 3),
        ("monomial", "insertion", 4),
        ("monomial", "deletion", 1),
    ]
    assert min(r["d"] for r in rows if r["function"] == "binomial") == 2
    for r in rows:
        assert r["oracle_grouped_error"] == pytest.approx(0.0, abs=1e-12)
        if r["function"] == "monomial" and r["kind"] == "insertion":
            assert r["per_feature_error"] == pytest.approx((r["d"] - 1) / (2 * r["d"] - 1))
        if r["function"] == "monomial" and r["kind"] == "deletion":
            assert r["per_feature_error"] == pytest.approx((r["d"] - 1) / (r["d"] + 1))
            assert r["per_feature_total_error"] == pytest.approx(_deletion_total_monomial(r["d"]))
    assert [r["function"] for r in error_table(2, ("binomial",))] == ["binomial"] * 2


# --- validation ------------------------------------------------------------------------


def test_bad_arguments_raise() -> None:
    poly = monomial(3)
    eye = np.eye(3, dtype=bool)
    with pytest.raises(ValueError, match="kind"):
        grouped_error(poly, eye, np.ones(3), "removal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        per_feature_optimum(poly, "removal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="objective"):
        per_feature_optimum(poly, "insertion", "mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="groups"):
        grouped_error(poly, np.eye(4, dtype=bool), np.ones(4))
    with pytest.raises(ValueError, match="groups"):
        grouped_error(poly, np.ones(3, dtype=bool), np.ones(1))
    with pytest.raises(ValueError, match="groups"):
        grouped_error(poly, np.full((2, 3), 0.5), np.ones(2))
    with pytest.raises(ValueError, match="alpha"):
        grouped_error(poly, eye, np.ones(2))
    with pytest.raises(ValueError, match="alpha"):
        grouped_error(poly, eye, [1.0, np.nan, 0.0])
    with pytest.raises(ValueError, match="max_d"):
        error_table(0)
    with pytest.raises(ValueError, match="max_d"):
        error_table(21)
    with pytest.raises(ValueError, match="polynomials"):
        error_table(3, ("trinomial",))
    with pytest.raises(ValueError, match="d"):
        grouped_error(monomial(21), np.eye(21, dtype=bool), np.ones(21))


def test_lp_failure_raises_runtime_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(*args: object, **kwargs: object) -> OptimizeResult:
        return OptimizeResult(status=2, x=None, fun=None, message="The problem is infeasible.")

    monkeypatch.setattr(lp_mod, "linprog", failing)
    with pytest.raises(RuntimeError, match="infeasible"):
        per_feature_optimum(monomial(3), "insertion", "worst")
