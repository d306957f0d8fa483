import math

import pytest
import torch
from entmax import sparsemax as entmax_sparsemax

from sop_cosmo.core import SOPConfig, SumOfParts, sparsemax, topk_rank_mask
from tests.core.zoo import make_cnn, make_mlp, make_token_model, make_vit


def test_prediction_is_weighted_sum_of_group_outputs(backbone_and_input):
    backbone, x = backbone_and_input
    model = SumOfParts(backbone, SOPConfig(n_groups=5, keep_fraction=0.3, group_sel_scale=3.0))
    out = model(x)
    b, c = out.prediction.shape
    assert (b, c) == (x.shape[0], backbone.n_outputs)
    assert out.group_outputs.shape == (b, 5, c)
    assert out.weights.shape == (b, 5, c)
    assert out.masks.shape[:2] == (b, 5)
    recomputed = (out.weights * out.group_outputs).sum(1)
    torch.testing.assert_close(out.prediction, recomputed, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.contributions.sum(1), out.prediction, rtol=0, atol=1e-5)
    # Sparsemax weights: a distribution over groups per output.
    assert (out.weights >= 0).all()
    torch.testing.assert_close(out.weights.sum(1), torch.ones(b, c))


@pytest.mark.parametrize("make", [make_cnn, make_vit, make_token_model])
def test_classification_and_regression_heads(make):
    torch.manual_seed(1)
    backbone = make(n_outputs=4)
    x = torch.randn(2, 1, 16, 16) if make is not make_token_model else torch.randint(0, 50, (2, 9))
    model = SumOfParts(backbone, SOPConfig(n_groups=3))
    out = model(x)
    # Classification: cross-entropy on the summed logits trains end to end.
    loss = torch.nn.functional.cross_entropy(out.prediction, torch.tensor([0, 3]))
    loss.backward()
    assert torch.isfinite(loss)
    assert model.selector.queries.grad is not None


def test_masks_are_binary_with_exactly_k_units_each(backbone_and_input):
    backbone, x = backbone_and_input
    model = SumOfParts(backbone, SOPConfig(n_groups=4, keep_fraction=0.25))
    masks = model(x).masks.flatten(2)
    n = masks.shape[-1]
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert (masks.sum(-1) == math.ceil(0.25 * n)).all()


def test_generator_receives_gradient_from_task_loss_through_the_masks():
    torch.manual_seed(0)
    model = SumOfParts(make_cnn(), SOPConfig(n_groups=4, keep_fraction=0.3))
    x, y = torch.randn(4, 1, 16, 16), torch.randn(4, 2)
    loss = torch.nn.functional.mse_loss(model(x).prediction, y)
    loss.backward()
    # The query/key projections act only through the masks: their gradient proves the path.
    for name in ("query", "key"):
        grad = getattr(model.generator, name).weight.grad
        assert grad is not None and grad.abs().sum() > 0, name
    copy_grads = [p.grad for p in model.feature_backbone.parameters() if p.grad is not None]
    assert copy_grads and sum(g.abs().sum() for g in copy_grads) > 0
    # Frozen backbone: no weight gradients at all.
    assert all(p.grad is None for p in model.backbone.parameters())


def test_anchor_mode_masks_carry_no_gradient_only_the_gate_does():
    torch.manual_seed(0)
    model = SumOfParts(make_cnn(), SOPConfig(n_groups=4, keep_fraction=0.3, mask_mode="anchor"))
    out = model(torch.randn(2, 1, 16, 16))
    assert out.masks.grad_fn is None
    out.prediction.sum().backward()
    assert model.generator.key.weight.grad.abs().sum() > 0  # through the gate only
    # The gate multiplies every group's output, in training and in evaluation alike.
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        train_out = model(x)
        raw, _ = model.group_forward(x, train_out.masks.flatten(2))
        model.eval()
        eval_out = model(x)
    assert not torch.allclose(train_out.group_outputs, raw)
    torch.testing.assert_close(eval_out.group_outputs, train_out.group_outputs)
    torch.testing.assert_close(eval_out.prediction, train_out.prediction)


def test_generator_scale_is_refused_where_it_does_nothing():
    with pytest.raises(ValueError, match=r"group_gen_scale.*ste_temperature"):
        SumOfParts(make_cnn(), SOPConfig(n_groups=2, group_gen_scale=2.0))
    SumOfParts(make_cnn(), SOPConfig(n_groups=2, group_gen_scale=2.0, mask_mode="anchor"))


def test_competing_groups_ignore_what_every_group_wants():
    """With compete, a pull of every group towards the same unit changes nothing."""
    torch.manual_seed(0)
    model = SumOfParts(make_cnn(), SOPConfig(n_groups=4, keep_fraction=0.3, compete=True))
    feats = model.feature_backbone.unit_features(torch.randn(2, 1, 16, 16)).detach()
    scores = model.generator(feats.requires_grad_(True)).scores  # (B, G, N)
    torch.testing.assert_close(scores.mean(1), torch.zeros_like(scores[:, 0]), atol=1e-6, rtol=0)
    scores[..., 0].sum().backward()  # every group's score of unit 0, summed
    assert feats.grad.abs().max() < 1e-6
    # Without competition the same pull moves the features.
    torch.manual_seed(0)
    plain = SumOfParts(make_cnn(), SOPConfig(n_groups=4, keep_fraction=0.3))
    feats2 = feats.detach().clone().requires_grad_(True)
    plain.generator(feats2).scores[..., 0].sum().backward()
    assert feats2.grad.abs().max() > 1e-3


def test_frozen_backbone_stays_in_eval_mode_and_fine_tune_option_trains_it():
    torch.manual_seed(0)
    frozen = SumOfParts(make_cnn(), SOPConfig(n_groups=2)).train()
    assert not frozen.backbone.training
    assert not any(p.requires_grad for p in frozen.backbone.parameters())
    tuned = SumOfParts(make_cnn(), SOPConfig(n_groups=2, freeze_backbone=False)).train()
    assert tuned.backbone.training
    tuned(torch.randn(2, 1, 16, 16)).prediction.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in tuned.backbone.parameters())


def test_feature_copy_is_trainable_even_from_an_already_frozen_backbone():
    torch.manual_seed(0)
    backbone = make_cnn()
    SumOfParts(backbone, SOPConfig(n_groups=3))  # freezes ``backbone`` in place
    model = SumOfParts(backbone, SOPConfig(n_groups=3))
    assert all(p.requires_grad for p in model.feature_backbone.parameters())
    assert not any(p.requires_grad for p in model.backbone.parameters())


def test_chunk_size_does_not_change_results(backbone_and_input):
    backbone, x = backbone_and_input
    torch.manual_seed(3)
    model = SumOfParts(backbone, SOPConfig(n_groups=5, chunk_size=1)).eval()
    with torch.no_grad():
        small = model(x)
        model.config.chunk_size = 1000
        big = model(x)
    torch.testing.assert_close(small.prediction, big.prediction, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(small.group_outputs, big.group_outputs, rtol=1e-5, atol=1e-6)


def test_group_outputs_equal_backbone_on_masked_input_with_baseline():
    torch.manual_seed(0)
    backbone = make_cnn()
    backbone.baseline.fill_(-0.5)
    model = SumOfParts(backbone, SOPConfig(n_groups=3)).eval()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        out = model(x)
        pixel_mask = backbone.expand_mask(out.masks.flatten(2), x)  # (B, G, 1, 16, 16)
        assert pixel_mask.shape == (2, 3, 1, 16, 16)
        masked = torch.where(pixel_mask.bool(), x.unsqueeze(1), torch.tensor(-0.5))
        direct = backbone.head(backbone.encoder(masked.flatten(0, 1))).view(2, 3, -1)
    torch.testing.assert_close(out.group_outputs, direct, rtol=1e-5, atol=1e-5)


def test_padding_never_grouped_and_always_on_units_in_every_group():
    torch.manual_seed(0)
    model = SumOfParts(make_token_model(), SOPConfig(n_groups=3, keep_fraction=0.5))
    x = torch.randint(0, 50, (2, 10))
    valid = torch.ones(2, 10, dtype=torch.bool)
    valid[0, 6:] = False
    always = torch.zeros(2, 10, dtype=torch.bool)
    always[:, 0] = True
    out = model(x, unit_valid=valid, always_on=always)
    assert (out.masks[0, :, 6:] == 0).all()
    assert (out.masks[:, :, 0] == 1).all()
    torch.testing.assert_close(out.prediction, (out.weights * out.group_outputs).sum(1))


def test_head_initialised_selector_prefers_the_group_with_the_largest_prediction():
    torch.manual_seed(0)
    model = SumOfParts(make_mlp(d=8), SOPConfig(n_groups=6, keep_fraction=0.5)).eval()
    with torch.no_grad():
        out = model(torch.rand(16, 8))
    # With queries = head weights, scores = y - bias: the top weight sits on the top output.
    top_weight = out.weights[..., 0].argmax(1)
    top_output = out.group_outputs[..., 0].argmax(1)
    assert (top_weight == top_output).all()


def test_same_seed_same_model_and_output():
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = SumOfParts(make_vit(), SOPConfig(n_groups=3))
        outs.append(model(torch.ones(1, 1, 16, 16)).prediction)
    assert torch.equal(outs[0], outs[1])


def test_sparsemax_matches_entmax_and_is_sparse():
    torch.manual_seed(0)
    z = 3 * torch.randn(5, 7, 4)
    p = sparsemax(z, dim=1)
    torch.testing.assert_close(p, entmax_sparsemax(z, dim=1), rtol=0, atol=1e-6)
    assert (p == 0).any()
    torch.testing.assert_close(p.sum(1), torch.ones(5, 4))


def test_topk_rank_mask_breaks_ties_by_position():
    scores = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    assert topk_rank_mask(scores, torch.tensor([2])).tolist() == [[1.0, 1.0, 0.0, 0.0]]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"mask_mode": "soft"}, "mask_mode"),
        ({"keep_fraction": 0.0}, "keep_fraction"),
        ({"selector_init": "zeros"}, "selector_init"),
        ({"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_config_names_the_key(kwargs, key):
    with pytest.raises(ValueError, match=key):
        SumOfParts(make_cnn(), SOPConfig(**kwargs))


def test_wrong_image_shape_is_a_clear_error():
    model = SumOfParts(make_cnn(), SOPConfig(n_groups=2))
    with pytest.raises(ValueError, match=r"x: expected shape \(B, 1, 16, 16\)"):
        model(torch.randn(2, 1, 8, 8))


def test_budget_sparsemax_keeps_exactly_the_budget():
    from sop_cosmo.core.selector import budget_sparsemax

    g = torch.Generator().manual_seed(0)
    scores = torch.randn(64, 10, 2, generator=g)
    for k in (1, 2, 3, 9):
        w = budget_sparsemax(scores, k, dim=1)
        assert torch.allclose(w.sum(1), torch.ones(64, 2), atol=1e-5)
        assert ((w > 0).sum(1) == k).all(), k
        # the kept groups are the k best scores
        kept = w > 0
        top = torch.zeros_like(kept).scatter_(1, scores.topk(k, dim=1).indices, True)
        assert torch.equal(kept, top)
    dense = budget_sparsemax(scores, 10, dim=1)
    assert (dense > 0).all()
    # standardised: the weights ignore the scores' scale and offset (the backbone's units)
    assert torch.allclose(
        budget_sparsemax(7.0 * scores - 3.0, 2, dim=1),
        budget_sparsemax(scores, 2, dim=1),
        atol=1e-5,
    )


def test_selector_budget_reaches_the_model():
    model = SumOfParts(make_cnn(), SOPConfig(n_groups=6, keep_fraction=0.3, active_groups=2))
    out = model.eval()(torch.randn(5, 1, 16, 16))
    active = (out.weights > 0).sum(1)
    # exactly 2, except where identical groups tie at the boundary (both then drop out)
    assert ((active >= 1) & (active <= 2)).all() and (active == 2).float().mean() > 0.5
    assert torch.allclose(out.prediction, out.contributions.sum(1), atol=1e-6)


def test_group_diagnostics_tell_collapse_from_spread():
    from sop_cosmo.core import SOPOutput, group_diagnostics

    b, g, n = 3, 4, 8
    same = torch.zeros(b, g, n)
    same[:, :, :2] = 1  # every group keeps units 0-1
    tiled = torch.zeros(b, g, n)
    for i in range(g):
        tiled[:, i, 2 * i : 2 * i + 2] = 1  # the groups tile the input
    weights = torch.zeros(b, g, 2)
    weights[:, 0] = 1.0

    def out(m):
        return SOPOutput(m, m, torch.zeros(b, g, 2), weights, torch.zeros(b, g, 1), m)

    collapsed, spread = group_diagnostics(out(same)), group_diagnostics(out(tiled))
    assert collapsed == {"active_groups": 1.0, "distinct_masks": 1.0, "coverage": 0.25}
    assert spread == {"active_groups": 1.0, "distinct_masks": 4.0, "coverage": 1.0}
    valid = torch.ones(b, n, dtype=torch.bool)
    valid[:, 4:] = False  # padding is not counted
    assert group_diagnostics(out(same), valid)["coverage"] == 0.5


def _generator(explore_noise, mask_mode="ste"):
    from sop_cosmo.core.generator import GroupGenerator

    torch.manual_seed(0)
    return GroupGenerator(
        8,
        n_groups=3,
        keep_fraction=0.25,
        n_heads=2,
        scale=1.0,
        mask_mode=mask_mode,
        ste_temperature=1.0,
        compete=False,
        explore_noise=explore_noise,
    )


def test_exploration_lets_a_bottom_unit_into_groups_in_training_only():
    plain, noisy = _generator(0.0), _generator(2.0)
    torch.testing.assert_close(plain.state_dict(), noisy.state_dict())
    feats = torch.randn(1, 16, 8, generator=torch.Generator().manual_seed(1))
    clean = plain(feats)
    bottom = clean.scores[0, 0].argmin()  # group 0's lowest-ranked unit
    # Evaluation is noise-free: the same masks and scores as without exploration.
    noisy.eval()
    torch.testing.assert_close(noisy(feats).masks, clean.masks)
    # Training: the clean scores are returned, but the masks vary and now and then keep the
    # unit that the noise-free generator never keeps; when kept, the loss reaches its score.
    noisy.train()
    torch.manual_seed(2)
    entered, grads = 0, []
    for _ in range(200):
        f = feats.clone().requires_grad_(True)
        out = noisy(f)
        torch.testing.assert_close(out.scores, clean.scores)
        if out.masks[0, 0, bottom] > 0.5:
            entered += 1
            out.masks[0, 0, bottom].backward()
            grads.append(float(f.grad.abs().sum()))
    assert clean.masks[0, 0, bottom] == 0
    assert 0 < entered < 200
    assert min(grads) > 1e-3


@pytest.mark.parametrize(("noise", "mode"), [(-0.5, "ste"), (1.0, "anchor")])
def test_exploration_settings_are_checked(noise, mode):
    with pytest.raises(ValueError, match="explore_noise"):
        _generator(noise, mode)
