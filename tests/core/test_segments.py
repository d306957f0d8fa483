"""Given segments as candidate groups (SOPConfig(generator="segments"))."""

import pytest
import torch

from sop_cosmo.core import (
    SOPConfig,
    SumOfParts,
    budget_sparsemax,
    group_diagnostics,
    segments_to_masks,
)
from tests.core.zoo import make_cnn


def test_segments_become_masks_in_increasing_id_and_pad_with_empty_groups():
    seg = torch.tensor([[5, 5, -1, 2, 2, 9], [0, 0, 0, 7, 7, 7], [3, 1, 4, 1, 5, 9]])
    masks, valid = segments_to_masks(seg, 3)
    assert masks.shape == (3, 3, 6) and valid.shape == (3, 3)
    want0 = [[0, 0, 0, 1, 1, 0], [1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]]  # ids 2, 5, 9
    assert masks[0].tolist() == want0
    assert masks[1].tolist() == [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1], [0] * 6]
    assert valid.tolist() == [[True] * 3, [True, True, False], [True] * 3]
    # five segments, three groups: ids 1, 3, 4 kept; the units of 5 and 9 are in no group
    assert masks[2].tolist() == [[0, 1, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0]]
    # a unit is in at most one group, and padding units in none
    masks, _ = segments_to_masks(seg, 4, unit_valid=seg != 0)
    assert (masks.sum(1) <= 1).all() and masks[1, :, :3].sum() == 0


def test_segments_are_refused_unless_the_generator_takes_them():
    x = torch.randn(1, 1, 16, 16)
    with pytest.raises(ValueError, match="segments: pass forward"):
        SumOfParts(make_cnn(), SOPConfig(n_groups=2))(x, segments=torch.zeros(1, 16).long())
    given = SumOfParts(make_cnn(), SOPConfig(n_groups=2, generator="segments"))
    with pytest.raises(ValueError, match="segments: pass forward"):
        given(x)
    with pytest.raises(ValueError, match="input 0 has no unit in any segment"):
        given(x, segments=torch.full((1, 16), -1))
    with pytest.raises(ValueError, match="generator: expected one of"):
        SumOfParts(make_cnn(), SOPConfig(generator="x"))
    assert given.generator is None and given.feature_backbone is None


@pytest.mark.parametrize("active", [None, 1, 2, 8])
def test_padded_groups_get_zero_weight_and_the_prediction_is_the_weighted_sum(active):
    torch.manual_seed(0)
    cfg = SOPConfig(n_groups=6, generator="segments", active_groups=active, group_sel_scale=3.0)
    model = SumOfParts(make_cnn(), cfg)
    x = torch.randn(3, 1, 16, 16)  # a 4 × 4 grid of units
    units = torch.arange(16)
    segments = torch.stack([units % 3, units // 4, torch.where(units < 5, 0, -1)])  # 3, 4, 1
    out = model(x, segments=segments)
    n_seg = torch.tensor([3, 4, 1])
    assert out.group_valid.sum(1).tolist() == n_seg.tolist()
    masks = out.masks.flatten(2)
    assert (masks[~out.group_valid] == 0).all()  # padding groups are empty ...
    assert (out.weights[~out.group_valid] == 0).all()  # ... and never picked
    torch.testing.assert_close(out.weights.sum(1), torch.ones(3, 2))
    assert (out.weights >= 0).all()
    torch.testing.assert_close(out.prediction, (out.weights * out.group_outputs).sum(1))
    if active is not None:  # the budget, capped by the segments there are
        want = n_seg.clamp(max=active).unsqueeze(1).expand(3, 2)
        assert ((out.weights > 0).sum(1) == want).all()
    # the group outputs are the backbone's on the segment masks
    torch.testing.assert_close(out.group_outputs, model.group_forward(x, masks)[0])
    assert group_diagnostics(out)["distinct_masks"] == pytest.approx(8 / 3)
    # gradients are finite everywhere (the −∞ of padded groups stays out of them)
    out.prediction.sum().backward()
    grads = [p.grad for p in model.selector.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_masked_budget_equals_the_plain_one_when_every_group_is_valid():
    torch.manual_seed(1)
    scores = torch.randn(4, 7, 3)
    for k in (1, 3, 7, 9):
        plain = budget_sparsemax(scores, k)
        masked = budget_sparsemax(scores, k, valid=torch.ones(4, 7, 1, dtype=torch.bool))
        torch.testing.assert_close(masked, plain)
    # invalid groups take no part: the same weights as on the valid groups alone
    valid = torch.tensor([True, False, True, True, False, True, True]).view(1, 7, 1)
    masked = budget_sparsemax(scores, 2, valid=valid)
    alone = budget_sparsemax(scores[:, valid.view(-1)], 2)
    torch.testing.assert_close(masked[:, valid.view(-1)], alone)
    assert (masked[:, ~valid.view(-1)] == 0).all()
