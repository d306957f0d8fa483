"""Trapezoid AUC on [0, 1]: hand-computed areas that a mis-parenthesised mean would break."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sop_cosmo.attribution import trapezoid_auc


@pytest.mark.parametrize(
    ("y", "expected"),
    [
        ([0.0, 1.0, 0.0], 0.5),  # `a + b / 2` would give 0.75
        ([1.0, 1.0], 1.0),  # `a + b / 2` would give 1.5
        ([0.0, 1.0], 0.5),
        ([1.0, 0.0, 0.0, 0.0, 0.0], 0.125),
        ([1.0, 0.0], 0.5),  # `a + b / 2` would give 1.0
        ([2.0, 4.0, 4.0], 3.5),
    ],
)
def test_uniform_grid_hand_values(y: list[float], expected: float) -> None:
    assert trapezoid_auc(y) == pytest.approx(expected, abs=1e-12)
    assert trapezoid_auc(np.asarray(y)) == pytest.approx(expected, abs=1e-12)
    got = trapezoid_auc(torch.tensor(y, dtype=torch.float64))
    assert isinstance(got, torch.Tensor) and got.dim() == 0
    assert float(got) == pytest.approx(expected, abs=1e-12)


def test_numpy_one_curve_returns_python_float() -> None:
    assert isinstance(trapezoid_auc(np.array([0.0, 1.0])), float)


def test_integer_values_are_promoted() -> None:
    assert trapezoid_auc(torch.tensor([0, 1, 0])).item() == pytest.approx(0.5)
    assert trapezoid_auc([0, 1, 0]) == pytest.approx(0.5)


def test_non_uniform_x() -> None:
    # widths 0.1 and 0.9, mean heights 0.5 and 1: 0.05 + 0.9
    assert trapezoid_auc([0.0, 1.0, 1.0], x=[0.0, 0.1, 1.0]) == pytest.approx(0.95)
    got = trapezoid_auc(torch.tensor([0.0, 1.0, 1.0]), x=torch.tensor([0.0, 0.1, 1.0]))
    assert float(got) == pytest.approx(0.95, abs=1e-6)


def test_x_is_rescaled_to_unit_interval() -> None:
    # x = [2, 2.2, 4] has the same relative spacing as [0, 0.1, 1]
    assert trapezoid_auc([0.0, 1.0, 1.0], x=[2.0, 2.2, 4.0]) == pytest.approx(0.95)
    # equally spaced x equals the default grid
    y = [3.0, 1.0, 4.0, 1.0, 5.0]
    assert trapezoid_auc(y, x=[10, 20, 30, 40, 50]) == pytest.approx(trapezoid_auc(y))


def test_matches_numpy_trapezoid_on_random_curves() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(3, 9))
    x = np.sort(rng.uniform(size=9))
    unit_x = (x - x[0]) / (x[-1] - x[0])
    np.testing.assert_allclose(trapezoid_auc(y, x=x), np.trapezoid(y, unit_x, axis=-1))


def test_batched_rows_numpy_and_torch() -> None:
    y = [[0.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]
    expected = [0.5, 1.0, 0.25]
    got_np = trapezoid_auc(np.asarray(y))
    assert isinstance(got_np, np.ndarray) and got_np.shape == (3,)
    np.testing.assert_allclose(got_np, expected)
    got_t = trapezoid_auc(torch.tensor(y))
    assert got_t.shape == (3,)
    torch.testing.assert_close(got_t, torch.tensor(expected))


def test_batched_rows_with_per_row_x() -> None:
    y = np.array([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    x = np.array([[0.0, 0.1, 1.0], [0.0, 0.9, 1.0]])
    # second row: 0.9 * 0.5 + 0.1 * 1 = 0.55
    np.testing.assert_allclose(trapezoid_auc(y, x=x), [0.95, 0.55])


@pytest.mark.parametrize("y", [[1.0], [], 3.0])
def test_fewer_than_two_points_raises(y: object) -> None:
    with pytest.raises(ValueError, match=r"^y: need at least 2 points"):
        trapezoid_auc(y)


@pytest.mark.parametrize("x", [[0.0, 0.5, 0.4], [1.0, 0.5, 0.0], [0.0, 0.0, 1.0]])
def test_non_increasing_x_raises(x: list[float]) -> None:
    with pytest.raises(ValueError, match=r"^x: must be strictly increasing"):
        trapezoid_auc([0.0, 1.0, 2.0], x=x)
    with pytest.raises(ValueError, match=r"^x: must be strictly increasing"):
        trapezoid_auc(torch.tensor([0.0, 1.0, 2.0]), x=torch.tensor(x))


def test_x_length_mismatch_raises() -> None:
    with pytest.raises(ValueError, match=r"^x: must have shape \(3,\)"):
        trapezoid_auc([0.0, 1.0, 2.0], x=[0.0, 1.0])


def test_non_finite_x_raises() -> None:
    with pytest.raises(ValueError, match=r"^x: contains NaN"):
        trapezoid_auc([0.0, 1.0, 2.0], x=[0.0, float("nan"), 1.0])
