"""The single scoring rule: scored class fixed on the full input; regression squared errors."""

from __future__ import annotations

import math

import pytest
import torch

from sop_cosmo.attribution import build_scoring_rule, higher_is_better, score_outputs


def test_classification_scores_full_input_class_with_hand_softmax() -> None:
    rule = build_scoring_rule("classification", torch.tensor([0.0, math.log(3.0), 0.0]))
    assert rule.target == 1
    assert rule.kinds == ("prob",)
    steps = torch.tensor(
        [
            [0.0, 0.0, 0.0],  # 1 / 3
            [math.log(2.0), 0.0, math.log(2.0)],  # 1 / (2 + 1 + 2)
            [0.0, math.log(3.0), 0.0],  # 3 / 5
            [0.0, 0.0, math.log(4.0)],  # class 2 wins here, still class 1 scored: 1 / 6
        ]
    )
    got = score_outputs(rule, steps)
    assert list(got) == ["prob"]
    torch.testing.assert_close(
        got["prob"], torch.tensor([1 / 3, 1 / 5, 3 / 5, 1 / 6], dtype=torch.float64)
    )


def test_classification_accepts_batched_full_output() -> None:
    rule = build_scoring_rule("classification", torch.tensor([[0.0, -1.0, 2.0]]))
    assert rule.target == 2


def test_regression_pred_and_label_curves() -> None:
    rule = build_scoring_rule(
        "regression", torch.tensor([1.0, -2.0]), label=torch.tensor([0.0, 1.0])
    )
    assert rule.kinds == ("pred_sqerr/0", "pred_sqerr/1", "label_sqerr/0", "label_sqerr/1")
    got = score_outputs(rule, torch.tensor([[3.0, 0.0], [1.0, -2.0]]))
    torch.testing.assert_close(got["pred_sqerr/0"], torch.tensor([4.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(got["pred_sqerr/1"], torch.tensor([4.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(got["label_sqerr/0"], torch.tensor([9.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(got["label_sqerr/1"], torch.tensor([1.0, 9.0], dtype=torch.float64))


def test_regression_without_label_omits_label_curves() -> None:
    rule = build_scoring_rule("regression", torch.tensor([1.0]))
    assert rule.kinds == ("pred_sqerr/0",)
    assert list(score_outputs(rule, torch.tensor([[0.0]]))) == ["pred_sqerr/0"]


def test_regression_float_label_for_single_output() -> None:
    rule = build_scoring_rule("regression", torch.tensor([1.0]), label=0.5)
    got = score_outputs(rule, torch.tensor([[2.0]]))
    assert got["label_sqerr/0"].item() == pytest.approx(2.25)


@pytest.mark.parametrize(
    ("mode", "kind", "expected"),
    [
        ("insertion", "prob", True),
        ("deletion", "prob", False),
        ("insertion", "pred_sqerr/0", False),
        ("deletion", "pred_sqerr/3", True),
        ("insertion", "label_sqerr/1", False),
        ("deletion", "label_sqerr/0", True),
    ],
)
def test_good_direction(mode: str, kind: str, expected: bool) -> None:
    assert higher_is_better(mode, kind) is expected


def test_bad_mode_or_kind_raises() -> None:
    with pytest.raises(ValueError, match=r"^mode: must be 'insertion' or 'deletion'"):
        higher_is_better("removal", "prob")
    with pytest.raises(ValueError, match=r"^kind: must be"):
        higher_is_better("insertion", "accuracy")


def test_bad_task_raises() -> None:
    with pytest.raises(ValueError, match=r"^task: must be 'classification' or 'regression'"):
        build_scoring_rule("segmentation", torch.zeros(2))


def test_label_with_classification_raises() -> None:
    with pytest.raises(ValueError, match=r"^label: .*pass label=None"):
        build_scoring_rule("classification", torch.zeros(3), label=torch.tensor(1))


def test_single_logit_classification_raises() -> None:
    with pytest.raises(
        ValueError, match=r"^full_output: classification needs logits for at least 2"
    ):
        build_scoring_rule("classification", torch.zeros(1))


def test_wrong_label_size_raises() -> None:
    with pytest.raises(
        ValueError, match=r"^label: regression needs one value per model output \(2\)"
    ):
        build_scoring_rule("regression", torch.zeros(2), label=torch.zeros(3))


def test_outputs_with_wrong_columns_raise() -> None:
    rule = build_scoring_rule("regression", torch.zeros(2))
    with pytest.raises(ValueError, match=r"^outputs: expected shape \(n, 2\)"):
        score_outputs(rule, torch.zeros(4, 3))
