"""Per-unit insertion/deletion curves, checked point by point against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from sop_cosmo.attribution import insertion_deletion, stack_aucs

W = torch.tensor([1.0, 2.0, 3.0, 4.0])


def linear(batch: Tensor) -> Tensor:
    """f(x) = w . x as a single regression output, (n, 4) -> (n, 1)."""
    return (batch @ W)[:, None]


def f64(values: list[float]) -> Tensor:
    return torch.tensor(values, dtype=torch.float64)


class Recorder:
    """Wraps a model and records the batch size of each call."""

    def __init__(self, model):
        self.model = model
        self.sizes: list[int] = []
        self.batches: list[Tensor] = []

    def __call__(self, batch: Tensor) -> Tensor:
        self.sizes.append(int(batch.shape[0]))
        self.batches.append(batch.clone())
        return self.model(batch)


# --- regression: f(x) = w . x with x = 1, attribution = contributions [1, 2, 3, 4] ------------


def test_linear_regression_every_curve_point() -> None:
    x = torch.ones(4)
    res = insertion_deletion(linear, x, W * x, task="regression", label=torch.tensor([8.0]))
    # order by contribution, descending: elements 3, 2, 1, 0
    assert res.order.tolist() == [3, 2, 1, 0]
    torch.testing.assert_close(res.fractions, f64([0.0, 0.25, 0.5, 0.75, 1.0]))
    # insertion outputs 0, 4, 7, 9, 10; deletion outputs 10, 6, 3, 1, 0; full output 10
    torch.testing.assert_close(res.outputs["insertion"][:, 0], torch.tensor([0.0, 4, 7, 9, 10]))
    torch.testing.assert_close(res.outputs["deletion"][:, 0], torch.tensor([10.0, 6, 3, 1, 0]))
    torch.testing.assert_close(res.curves["insertion/pred_sqerr/0"], f64([100, 36, 9, 1, 0]))
    torch.testing.assert_close(res.curves["deletion/pred_sqerr/0"], f64([0, 16, 49, 81, 100]))
    torch.testing.assert_close(res.curves["insertion/label_sqerr/0"], f64([64, 16, 1, 1, 4]))
    torch.testing.assert_close(res.curves["deletion/label_sqerr/0"], f64([4, 4, 25, 49, 64]))
    # 0.25 * sum of mean heights
    assert res.aucs["insertion/pred_sqerr/0"] == pytest.approx(24.0)
    assert res.aucs["deletion/pred_sqerr/0"] == pytest.approx(49.0)
    assert res.aucs["insertion/label_sqerr/0"] == pytest.approx(13.0)
    assert res.aucs["deletion/label_sqerr/0"] == pytest.approx(28.0)
    assert res.higher_is_better == {
        "insertion/pred_sqerr/0": False,
        "insertion/label_sqerr/0": False,
        "deletion/pred_sqerr/0": True,
        "deletion/label_sqerr/0": True,
    }


def test_regression_without_label_has_only_prediction_curves() -> None:
    res = insertion_deletion(linear, torch.ones(4), W, task="regression")
    assert sorted(res.curves) == ["deletion/pred_sqerr/0", "insertion/pred_sqerr/0"]


def test_multi_output_regression_has_one_curve_per_column() -> None:
    def two_outputs(batch: Tensor) -> Tensor:
        return torch.stack([batch @ W, batch.sum(1)], dim=1)

    res = insertion_deletion(two_outputs, torch.ones(4), W, task="regression")
    # column 1 is the count of revealed ones; full value 4
    torch.testing.assert_close(res.curves["insertion/pred_sqerr/1"], f64([16, 9, 4, 1, 0]))
    torch.testing.assert_close(res.curves["deletion/pred_sqerr/1"], f64([0, 1, 4, 9, 16]))


def test_baseline_tensor() -> None:
    base = torch.tensor([1.0, 0.0, 2.0, 0.0])  # f(base) = 7
    res = insertion_deletion(linear, torch.ones(4), W, baseline=base, task="regression")
    # insertion reveals x at elements 3, 2, 1, 0 over the baseline
    torch.testing.assert_close(res.outputs["insertion"][:, 0], torch.tensor([7.0, 11, 8, 10, 10]))
    # deletion writes the baseline into elements 3, 2, 1, 0
    torch.testing.assert_close(res.outputs["deletion"][:, 0], torch.tensor([10.0, 6, 9, 7, 7]))


def test_float_baseline() -> None:
    res = insertion_deletion(linear, torch.ones(4), W, baseline=0.5, task="regression")
    torch.testing.assert_close(res.outputs["insertion"][:, 0], torch.tensor([5.0, 7, 8.5, 9.5, 10]))


def test_broadcast_baseline_reaches_the_model() -> None:
    x = torch.arange(8.0).reshape(2, 2, 2)
    base = torch.tensor([-1.0, -2.0]).view(2, 1, 1)  # per-channel fill
    rec = Recorder(lambda b: b.reshape(len(b), -1).sum(1, keepdim=True))
    insertion_deletion(rec, x, x, baseline=base, task="regression")
    inserted, deleted = rec.batches[1], rec.batches[2]
    torch.testing.assert_close(inserted[0], base.expand(2, 2, 2))
    torch.testing.assert_close(inserted[-1], x)
    torch.testing.assert_close(deleted[0], x)
    torch.testing.assert_close(deleted[-1], base.expand(2, 2, 2))


# --- classification: logits [x0 + x1, ln 2], x = [ln 2, ln 3] --------------------------------


def two_class(batch: Tensor) -> Tensor:
    return torch.stack([batch.sum(1), torch.full((len(batch),), math.log(2.0))], dim=1)


def test_classification_hand_probabilities() -> None:
    x = torch.tensor([math.log(2.0), math.log(3.0)])
    res = insertion_deletion(two_class, x, torch.tensor([1.0, 2.0]), task="classification")
    # full logits [ln 6, ln 2]: class 0 predicted, p0 = e^s / (e^s + 2)
    assert res.rule.target == 0
    assert res.order.tolist() == [1, 0]
    # insertion s = 0, ln 3, ln 6; class 1 wins at the baseline but class 0 is still scored
    ins = [1 / 3, 3 / 5, 3 / 4]
    dele = [3 / 4, 1 / 2, 1 / 3]  # s = ln 6, ln 2, 0
    torch.testing.assert_close(res.curves["insertion/prob"], f64(ins))
    torch.testing.assert_close(res.curves["deletion/prob"], f64(dele))
    assert res.aucs["insertion/prob"] == pytest.approx(
        0.5 * ((ins[0] + ins[1]) / 2 + (ins[1] + ins[2]) / 2)
    )
    assert res.aucs["deletion/prob"] == pytest.approx(
        0.5 * ((dele[0] + dele[1]) / 2 + (dele[1] + dele[2]) / 2)
    )
    assert res.higher_is_better == {"insertion/prob": True, "deletion/prob": False}


# --- units, ordering and steps ---------------------------------------------------------------


def total(batch: Tensor) -> Tensor:
    return batch.reshape(len(batch), -1).sum(1, keepdim=True)


X23 = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
COLUMN_UNITS = torch.tensor([2, 0, 1])  # broadcast over rows: column j is unit COLUMN_UNITS[j]


def test_feature_mask_with_per_unit_attribution() -> None:
    res = insertion_deletion(
        total, X23, torch.tensor([0.5, 0.1, 0.9]), feature_mask=COLUMN_UNITS, task="regression"
    )
    # units by score: 2 (column 0, sum 5), 0 (column 1, sum 7), 1 (column 2, sum 9)
    assert res.order.tolist() == [2, 0, 1]
    torch.testing.assert_close(res.fractions, f64([0, 1 / 3, 2 / 3, 1]))
    torch.testing.assert_close(res.outputs["insertion"][:, 0], torch.tensor([0.0, 5, 12, 21]))
    torch.testing.assert_close(res.outputs["deletion"][:, 0], torch.tensor([21.0, 16, 9, 0]))


def test_feature_mask_sums_element_attributions_per_unit() -> None:
    # unit 2 (column 0): 3 + 3 = 6; unit 0 (column 1): 5 + 0 = 5; unit 1 (column 2): 1 + 1 = 2.
    # A max over elements would put unit 0 first instead.
    attr = torch.tensor([[3.0, 5.0, 1.0], [3.0, 0.0, 1.0]])
    res = insertion_deletion(total, X23, attr, feature_mask=COLUMN_UNITS, task="regression")
    assert res.order.tolist() == [2, 0, 1]
    torch.testing.assert_close(res.outputs["insertion"][:, 0], torch.tensor([0.0, 5, 12, 21]))


def test_token_units_on_embeddings() -> None:
    x = torch.tensor([[1.0, 1.0], [10.0, 10.0], [100.0, 100.0]])  # (L=3, E=2)
    attr = torch.tensor([0.0, 2.0, 1.0])
    res = insertion_deletion(
        total, x, attr, feature_mask=torch.arange(3)[:, None], task="regression"
    )
    assert res.order.tolist() == [1, 2, 0]
    torch.testing.assert_close(res.outputs["insertion"][:, 0], torch.tensor([0.0, 20, 220, 222]))


def test_token_ids_with_pad_baseline() -> None:
    table = torch.tensor([0.0, 10.0, 20.0, 30.0])  # id 0 is the pad token

    def bag(ids: Tensor) -> Tensor:
        return table[ids].sum(1, keepdim=True)

    x = torch.tensor([3, 1, 2])
    res = insertion_deletion(bag, x, torch.tensor([0.2, 0.9, 0.5]), baseline=0, task="regression")
    assert res.order.tolist() == [1, 2, 0]
    torch.testing.assert_close(res.outputs["insertion"][:, 0], torch.tensor([0.0, 10, 30, 60]))
    with pytest.raises(ValueError, match=r"^baseline: x has integer dtype"):
        insertion_deletion(bag, x, torch.ones(3), baseline=0.5, task="regression")


def test_ties_keep_index_order() -> None:
    res = insertion_deletion(
        linear, torch.ones(4), torch.tensor([1.0, 1.0, 0.0, 1.0]), task="regression"
    )
    assert res.order.tolist() == [0, 1, 3, 2]
    torch.testing.assert_close(res.outputs["insertion"][:, 0], torch.tensor([0.0, 1, 3, 7, 10]))


def test_n_steps_coarser_grid() -> None:
    res = insertion_deletion(linear, torch.ones(4), W, n_steps=3, task="regression")
    # floor(k * 4 / 3) units: 0, 1, 2, 4
    torch.testing.assert_close(res.fractions, f64([0.0, 0.25, 0.5, 1.0]))
    torch.testing.assert_close(res.curves["insertion/pred_sqerr/0"], f64([100, 36, 9, 0]))
    # non-uniform widths: 0.25 * 68 + 0.25 * 22.5 + 0.5 * 4.5
    assert res.aucs["insertion/pred_sqerr/0"] == pytest.approx(24.875)
    res2 = insertion_deletion(linear, torch.ones(4), W, n_steps=2, task="regression")
    torch.testing.assert_close(res2.outputs["insertion"][:, 0], torch.tensor([0.0, 7, 10]))


def test_batches_are_chunked_and_not_per_step() -> None:
    rec = Recorder(linear)
    small = insertion_deletion(rec, torch.ones(4), W, task="regression", batch_size=2)
    # one full-input call, then 3 chunks (2 + 2 + 1 steps) for each of the two curves
    assert rec.sizes == [1, 2, 2, 2, 2, 1, 1]
    rec_big = Recorder(linear)
    big = insertion_deletion(rec_big, torch.ones(4), W, task="regression")
    assert rec_big.sizes == [1, 5, 5]
    for name in big.curves:
        torch.testing.assert_close(small.curves[name], big.curves[name])


# --- direction sanity: a perfect attribution beats the reversed one -------------------------


def test_perfect_beats_reversed_classification() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(12, generator=gen)
    x = torch.randn(12, generator=gen)
    x = torch.where(w * x.sign() < 0, -x, x)  # all contributions positive: class 0 predicted

    def model(b: Tensor) -> Tensor:
        return torch.stack([b @ w, torch.zeros(len(b))], dim=1)

    contrib = w * x
    good = insertion_deletion(model, x, contrib, task="classification")
    bad = insertion_deletion(model, x, -contrib, task="classification")
    assert good.rule.target == 0
    assert good.aucs["insertion/prob"] > bad.aucs["insertion/prob"]
    assert good.aucs["deletion/prob"] < bad.aucs["deletion/prob"]


def test_perfect_beats_reversed_regression() -> None:
    gen = torch.Generator().manual_seed(1)
    w = torch.rand(10, generator=gen) + 0.1
    x = torch.rand(10, generator=gen) + 0.1

    def model(b: Tensor) -> Tensor:
        return (b @ w)[:, None]

    contrib = w * x
    good = insertion_deletion(model, x, contrib, task="regression")
    bad = insertion_deletion(model, x, -contrib, task="regression")
    assert good.aucs["insertion/pred_sqerr/0"] < bad.aucs["insertion/pred_sqerr/0"]
    assert good.aucs["deletion/pred_sqerr/0"] > bad.aucs["deletion/pred_sqerr/0"]


# --- batch helper ----------------------------------------------------------------------------


def test_stack_aucs() -> None:
    a = insertion_deletion(linear, torch.ones(4), W, task="regression")
    b = insertion_deletion(linear, torch.ones(4), W.flip(0), task="regression")
    stacked = stack_aucs([a, b])
    assert sorted(stacked) == sorted(a.aucs)
    torch.testing.assert_close(
        stacked["insertion/pred_sqerr/0"],
        f64([a.aucs["insertion/pred_sqerr/0"], b.aucs["insertion/pred_sqerr/0"]]),
    )
    assert stacked["insertion/pred_sqerr/0"][0].item() == pytest.approx(24.0)
    c = insertion_deletion(linear, torch.ones(4), W, task="regression", label=1.0)
    with pytest.raises(ValueError, match=r"^results: result 1 has curves"):
        stack_aucs([a, c])
    with pytest.raises(ValueError, match=r"^results: pass at least one"):
        stack_aucs([])


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"attribution": torch.ones(3)},
            r"^attribution: without feature_mask it needs x's shape \(4,\)",
        ),
        ({"attribution": torch.tensor([1.0, float("nan"), 0, 0])}, r"^attribution: contains NaN"),
        ({"task": "ranking"}, r"^task: must be 'classification' or 'regression'"),
        ({"baseline": torch.zeros(3)}, r"^baseline: a tensor baseline must be broadcastable"),
        ({"baseline": "zero"}, r"^baseline: pass a float or a tensor"),
        ({"n_steps": 0}, r"^n_steps: pass an integer in \[1, 4\]"),
        ({"n_steps": 5}, r"^n_steps: pass an integer in \[1, 4\]"),
        ({"batch_size": 0}, r"^batch_size: pass a positive integer"),
        ({"label": torch.zeros(2)}, r"^label: regression needs one value per model output \(1\)"),
        ({"feature_mask": torch.zeros(4)}, r"^feature_mask: pass an integer tensor"),
        (
            {"feature_mask": torch.zeros(3, dtype=torch.long)},
            r"^feature_mask: must be broadcastable",
        ),
        (
            {"feature_mask": torch.tensor([0, 0, 2, 2]), "attribution": torch.ones(4)},
            r"^feature_mask: every unit id 0\.\.2 must own at least one element; ids \[1\]",
        ),
        (
            {"feature_mask": torch.tensor([0, 0, 1, 1]), "attribution": torch.ones(3)},
            r"^feature_mask: every unit id 0\.\.2",
        ),
        (
            {"feature_mask": torch.tensor([0, 0, 1, 2]), "attribution": torch.ones(2)},
            r"^attribution: has 2 unit scores but feature_mask uses id 2",
        ),
        (
            {"feature_mask": torch.tensor([0, 0, 1, 1]), "attribution": torch.ones(2, 2)},
            r"^attribution: with feature_mask pass x's shape",
        ),
    ],
)
def test_bad_arguments_raise(kwargs: dict, pattern: str) -> None:
    args = {"attribution": W, "task": "regression"} | kwargs
    attribution = args.pop("attribution")
    with pytest.raises(ValueError, match=pattern):
        insertion_deletion(linear, torch.ones(4), attribution, **args)


def test_label_with_classification_raises() -> None:
    with pytest.raises(ValueError, match=r"^label: .*pass label=None"):
        insertion_deletion(two_class, torch.ones(2), torch.ones(2), task="classification", label=1)


def test_model_with_wrong_output_shape_raises() -> None:
    with pytest.raises(ValueError, match=r"^model: must map a batch of shape \(n, \*x.shape\)"):
        insertion_deletion(lambda b: b @ W, torch.ones(4), W, task="regression")


def test_scalar_x_raises() -> None:
    with pytest.raises(ValueError, match=r"^x: pass one non-empty input"):
        insertion_deletion(linear, torch.tensor(1.0), torch.tensor(1.0), task="regression")
