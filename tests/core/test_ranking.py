"""Every group and unit of an SOP explanation gets a rank, selected ones first."""

import torch

from sop_cosmo.core import SOPOutput, group_ranking, unit_ranking


def _output(weights, outputs, masks):
    w = torch.tensor(weights, dtype=torch.float32).view(1, -1, 1)
    y = torch.tensor(outputs, dtype=torch.float32).view(1, -1, 1)
    m = torch.tensor(masks, dtype=torch.float32).unsqueeze(0)
    return SOPOutput(
        prediction=(w * y).sum(1), masks=m, group_outputs=y, weights=w,
        group_features=torch.zeros(1, len(weights), 2), scores=torch.zeros_like(m),
    )  # fmt: skip


def test_selected_groups_first_then_by_own_output():
    out = _output([0.7, 0.0, 0.3, 0.0], [1.0, -5.0, 2.0, 0.5], [[1, 0, 0]] * 4)
    keys = group_ranking(out, 0)[0]
    # |w·y|: group 0 → 0.7, group 2 → 0.6; unselected by |y|: group 1 (5) before group 3 (0.5)
    assert torch.argsort(keys, descending=True).tolist() == [0, 2, 1, 3]
    signed = group_ranking(out, 0, signed=True)[0]
    assert torch.argsort(signed, descending=True).tolist() == [0, 2, 3, 1]


def test_unit_ranking_orders_unscored_units_by_their_best_group():
    masks = torch.tensor([[1, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]], dtype=torch.float32)
    keys = torch.tensor([3.5, 0.9, -0.4], dtype=torch.float64)
    scores = torch.tensor([0.2, 0.1, 0.0, 0.0, 0.0])
    ranked = unit_ranking(scores, masks, keys)
    # scored units 0, 1 first; then unit 2 (group key 0.9), unit 3 (-0.4); unit 4 in no group
    assert torch.argsort(ranked, descending=True).tolist() == [0, 1, 2, 3, 4]
    assert ranked[4] == -2.0
