"""Grouped insertion/deletion: cumulative UNION of the top-k groups, checked by hand."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from sop_cosmo.attribution import grouped_insertion_deletion, insertion_deletion

W5 = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])

# Overlapping groups over 5 elements; element 4 is in no group.
GROUPS = torch.tensor(
    [
        [1, 1, 0, 0, 0],  # g0 = {0, 1}
        [0, 1, 1, 0, 0],  # g1 = {1, 2}, shares element 1 with g0
        [0, 0, 0, 1, 0],  # g2 = {3}
    ]
)
SCORES = torch.tensor([0.2, 0.9, 0.5])  # order g1, g2, g0


def linear(batch: Tensor) -> Tensor:
    return (batch @ W5)[:, None]


def f64(values: list[float]) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_overlapping_groups_use_the_union() -> None:
    res = grouped_insertion_deletion(
        linear, torch.ones(5), GROUPS.bool(), SCORES, task="regression"
    )
    assert res.order.tolist() == [1, 2, 0]
    torch.testing.assert_close(res.fractions, f64([0, 1 / 3, 2 / 3, 1]))
    # revealed sets: {}, {1,2}, {1,2,3}, {0,1,2,3}. A sum of masks would count element 1 twice
    # at the last step (12 instead of 10).
    torch.testing.assert_close(res.outputs["insertion"][:, 0], torch.tensor([0.0, 5, 9, 10]))
    # element 4 is never removed: full output 15 -> 15 - union
    torch.testing.assert_close(res.outputs["deletion"][:, 0], torch.tensor([15.0, 10, 6, 5]))
    torch.testing.assert_close(res.curves["insertion/pred_sqerr/0"], f64([225, 100, 36, 25]))
    torch.testing.assert_close(res.curves["deletion/pred_sqerr/0"], f64([0, 25, 81, 100]))
    # widths 1/3: (162.5 + 68 + 30.5) / 3
    assert res.aucs["insertion/pred_sqerr/0"] == pytest.approx(87.0)
    assert res.aucs["deletion/pred_sqerr/0"] == pytest.approx((12.5 + 53 + 90.5) / 3)


def test_integer_masks_match_bool_masks() -> None:
    as_bool = grouped_insertion_deletion(
        linear, torch.ones(5), GROUPS.bool(), SCORES, task="regression"
    )
    as_int = grouped_insertion_deletion(linear, torch.ones(5), GROUPS, SCORES, task="regression")
    as_float = grouped_insertion_deletion(
        linear, torch.ones(5), GROUPS.float(), SCORES, task="regression"
    )
    for res in (as_int, as_float):
        for name, curve in as_bool.curves.items():
            torch.testing.assert_close(res.curves[name], curve)


def test_group_inside_earlier_union_adds_a_flat_step() -> None:
    # g0 = {0} is contained in g1 = {0, 1}; g1 ranks first, so g0 changes nothing.
    def two_class(b: Tensor) -> Tensor:
        return torch.stack([b.sum(1), torch.full((len(b),), math.log(2.0))], dim=1)

    x = torch.tensor([math.log(2.0), math.log(3.0)])
    masks = torch.tensor([[True, False], [True, True]])
    res = grouped_insertion_deletion(
        two_class, x, masks, torch.tensor([1.0, 2.0]), task="classification"
    )
    # p0 = e^s / (e^s + 2) for s = 0, ln 6, ln 6
    torch.testing.assert_close(res.curves["insertion/prob"], f64([1 / 3, 3 / 4, 3 / 4]))
    torch.testing.assert_close(res.curves["deletion/prob"], f64([3 / 4, 1 / 3, 1 / 3]))
    assert res.aucs["insertion/prob"] == pytest.approx(0.5 * (13 / 24 + 3 / 4))


def test_singleton_groups_equal_the_per_element_metric() -> None:
    x = torch.tensor([0.5, -1.0, 2.0, 1.5, 0.25])
    scores = torch.tensor([0.3, -0.2, 0.9, 0.1, 0.0])
    grouped = grouped_insertion_deletion(
        linear, x, torch.eye(5, dtype=torch.bool), scores, task="regression", label=2.0
    )
    plain = insertion_deletion(linear, x, scores, task="regression", label=2.0)
    assert grouped.order.tolist() == plain.order.tolist() == [2, 0, 3, 4, 1]
    for name, curve in plain.curves.items():
        torch.testing.assert_close(grouped.curves[name], curve)
        assert grouped.aucs[name] == pytest.approx(plain.aucs[name])


def test_broadcast_masks_and_tensor_baseline() -> None:
    # (G, 1, 2) masks shared across the 2 channels of a (2, 1, 2) input
    x = torch.tensor([[[1.0, 2.0]], [[3.0, 4.0]]])
    masks = torch.tensor([[[[True, False]]], [[[False, True]]]])
    base = torch.full((2, 1, 2), 10.0)

    def total(b: Tensor) -> Tensor:
        return b.reshape(len(b), -1).sum(1, keepdim=True)

    res = grouped_insertion_deletion(
        total, x, masks, torch.tensor([0.0, 1.0]), baseline=base, task="regression"
    )
    # insertion: all 10s (40), then column 1 revealed (2 + 4 + 20), then everything (10)
    torch.testing.assert_close(res.outputs["insertion"][:, 0], torch.tensor([40.0, 26, 10]))
    torch.testing.assert_close(res.outputs["deletion"][:, 0], torch.tensor([10.0, 24, 40]))


def test_ties_keep_group_index_order() -> None:
    res = grouped_insertion_deletion(
        linear, torch.ones(5), GROUPS, torch.ones(3), task="regression"
    )
    assert res.order.tolist() == [0, 1, 2]
    torch.testing.assert_close(res.outputs["insertion"][:, 0], torch.tensor([0.0, 3, 6, 10]))


def test_batches_are_chunked() -> None:
    sizes: list[int] = []

    def counted(b: Tensor) -> Tensor:
        sizes.append(len(b))
        return linear(b)

    grouped_insertion_deletion(
        counted, torch.ones(5), GROUPS, SCORES, task="regression", batch_size=3
    )
    assert sizes == [1, 3, 3, 1, 1]


@pytest.mark.parametrize(
    ("masks", "scores", "pattern"),
    [
        (GROUPS[:, :4], SCORES, r"^group_masks: expected shape \(G, \*x.shape\) = \(G, 5\)"),
        (GROUPS[0], SCORES, r"^group_masks: expected shape"),
        (GROUPS * 2, SCORES, r"^group_masks: must be bool or contain only 0 and 1"),
        (GROUPS.float() * 0.7, SCORES, r"^group_masks: must be bool or contain only 0 and 1"),
        (torch.zeros(0, 5, dtype=torch.bool), torch.zeros(0), r"^group_masks: pass at least one"),
        (GROUPS, SCORES[:2], r"^group_scores: expected shape \(3,\)"),
        (GROUPS, torch.tensor([0.0, float("nan"), 1.0]), r"^group_scores: contains NaN"),
    ],
)
def test_bad_group_arguments_raise(masks: Tensor, scores: Tensor, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        grouped_insertion_deletion(linear, torch.ones(5), masks, scores, task="regression")


def test_bad_task_raises() -> None:
    with pytest.raises(ValueError, match=r"^task: must be 'classification' or 'regression'"):
        grouped_insertion_deletion(linear, torch.ones(5), GROUPS, SCORES, task="Regression")
