"""Completeness gap and fidelity R^2 on hand-computed batches."""

from __future__ import annotations

import math

import pytest
import torch

from sop_cosmo.attribution import completeness_gap, fidelity_r2


def f64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_completeness_gap_without_baseline() -> None:
    gap = completeness_gap(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([1.0, 2.5, 2.0]))
    torch.testing.assert_close(gap, f64([0.0, 0.5, 1.0]))


def test_completeness_gap_with_baseline_outputs() -> None:
    sums = [1.0, 2.0, 3.0]
    outputs = [1.0, 2.5, 2.0]
    # target f(x) - f(b) = [0, 1.5, 1]
    torch.testing.assert_close(completeness_gap(sums, outputs, 1.0), f64([1.0, 0.5, 2.0]))
    torch.testing.assert_close(
        completeness_gap(sums, outputs, [1.0, 0.0, -1.0]), f64([1.0, 0.5, 0.0])
    )


def test_completeness_gap_multi_output_with_baseline_row() -> None:
    sums = torch.tensor([[1.0, 0.0], [2.0, 1.0]])
    outputs = torch.tensor([[2.0, 1.0], [2.0, 3.0]])
    gap = completeness_gap(sums, outputs, torch.tensor([1.0, 0.0]))
    # targets [[1, 1], [1, 3]]
    torch.testing.assert_close(gap, f64([[0.0, 1.0], [1.0, 2.0]]))


def test_completeness_gap_shape_errors() -> None:
    with pytest.raises(
        ValueError, match=r"^attribution_sums: must have the shape of outputs \(3,\)"
    ):
        completeness_gap(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"^baseline_outputs: must be broadcastable"):
        completeness_gap(torch.zeros(3), torch.zeros(3), torch.zeros(2))


def test_r2_perfect_mean_and_hand_value() -> None:
    outputs = [1.0, 2.0, 3.0, 4.0]
    assert fidelity_r2(outputs, outputs).item() == pytest.approx(1.0)
    assert fidelity_r2([2.5] * 4, outputs).item() == pytest.approx(0.0)
    # SS_res = 1, SS_tot = 5
    assert fidelity_r2([1.0, 2.0, 3.0, 5.0], outputs).item() == pytest.approx(0.8)
    # can be negative: SS_res = 4 + 0 + 0 + 4 = 8
    assert fidelity_r2([3.0, 2.0, 3.0, 2.0], outputs).item() == pytest.approx(1 - 8 / 5)


def test_r2_per_output_column() -> None:
    outputs = torch.tensor([[1.0, 0.0], [2.0, 2.0], [3.0, 4.0], [4.0, 6.0]])
    sums = torch.tensor([[1.0, 0.0], [2.0, 2.0], [3.0, 4.0], [5.0, 3.0]])
    # column 1: SS_tot = 9 + 1 + 1 + 9 = 20, SS_res = 9
    torch.testing.assert_close(fidelity_r2(sums, outputs), f64([0.8, 1 - 9 / 20]))


def test_r2_constant_outputs() -> None:
    assert fidelity_r2([2.0, 2.0], [2.0, 2.0]).item() == 1.0
    assert math.isnan(fidelity_r2([2.0, 3.0], [2.0, 2.0]).item())


def test_r2_errors() -> None:
    with pytest.raises(ValueError, match=r"^outputs: R\^2 needs at least 2 samples"):
        fidelity_r2([1.0], [1.0])
    with pytest.raises(ValueError, match=r"^attribution_sums: must have the shape of outputs"):
        fidelity_r2(torch.zeros(3), torch.zeros(4))
