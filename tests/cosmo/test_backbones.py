import pytest
import torch

from sop_cosmo.cosmo.models import (
    CNNRegressor,
    SOPRegressor,
    StatsMLP,
    build_model,
)


def test_anchor_cnn_on_66px_has_the_anchor_shapes():
    cnn = build_model("cnn", in_channels=1, patch_size=66, n_outputs=2)
    assert isinstance(cnn, CNNRegressor)
    assert cnn.fc[1].in_features == 1200  # 48·5·5, as in the anchor
    assert [m.out_features for m in cnn.fc if isinstance(m, torch.nn.Linear)] == [128, 64, 32]
    assert cnn(torch.randn(3, 1, 66, 66)).shape == (3, 2)


@pytest.mark.parametrize(("bins", "size"), [(4, 32), (2, 66), (1, 48)])
def test_cnn_adapts_to_bins_and_patch_size(bins, size):
    cnn = build_model("cnn", in_channels=bins, patch_size=size, n_outputs=2,
                      options={"widths": [8, 16], "hidden": [16]})  # fmt: skip
    assert cnn(torch.randn(2, bins, size, size)).shape == (2, 2)


def test_too_small_patch_is_a_clear_error():
    with pytest.raises(ValueError, match="patch_size: 12 px is too small"):
        build_model("cnn", in_channels=1, patch_size=12, n_outputs=2)


def test_sop_wraps_the_trained_cnn_frozen_and_faithful():
    torch.manual_seed(0)
    cnn = build_model("cnn", in_channels=2, patch_size=32, n_outputs=2,
                      options={"widths": [8, 16], "hidden": [16]})  # fmt: skip
    before = {k: v.clone() for k, v in cnn.state_dict().items()}
    sop = build_model("sop", in_channels=2, patch_size=32, n_outputs=2, backbone=cnn,
                      options={"attention_patch": 4, "n_groups": 5,
                               "freeze_backbone": True})  # fmt: skip
    assert isinstance(sop, SOPRegressor) and sop.n_groups == 5
    out = sop.explain(torch.randn(3, 2, 32, 32))
    assert out.masks.shape == (3, 5, 8, 8)
    torch.testing.assert_close(out.prediction, (out.weights * out.group_outputs).sum(1))
    out.prediction.sum().backward()
    assert all(not p.requires_grad for p in cnn.parameters())
    assert all(torch.equal(before[k], v) for k, v in cnn.state_dict().items())
    # The default trains the backbone with the SOP (docs/training.md, "SOP defaults").
    fresh = build_model("cnn", in_channels=2, patch_size=32, n_outputs=2,
                        options={"widths": [8, 16], "hidden": [16]})  # fmt: skip
    tuned = build_model("sop", in_channels=2, patch_size=32, n_outputs=2, backbone=fresh,
                        options={"attention_patch": 4, "n_groups": 5})  # fmt: skip
    assert all(p.requires_grad for p in tuned.sop.backbone.parameters())


def test_sop_checks_its_backbone():
    cnn = build_model("cnn", in_channels=1, patch_size=32, n_outputs=2,
                      options={"widths": [8], "hidden": [8]})  # fmt: skip
    with pytest.raises(ValueError, match="--backbone"):
        build_model("sop", in_channels=1, patch_size=32, n_outputs=2)
    with pytest.raises(ValueError, match=r"backbone: built for .*\(1, 32, 2\).*\(4, 32, 2\)"):
        build_model("sop", in_channels=4, patch_size=32, n_outputs=2, backbone=cnn)


def test_stats_mlp_and_option_errors():
    mlp = build_model("stats", in_channels=4, patch_size=66, n_outputs=2, n_features=30)
    assert isinstance(mlp, StatsMLP) and mlp(torch.randn(5, 30)).shape == (5, 2)
    with pytest.raises(ValueError, match="n_features"):
        build_model("stats", in_channels=4, patch_size=66, n_outputs=2)
    with pytest.raises(ValueError, match=r"unknown keys \['depth'\]"):
        build_model("cnn", in_channels=1, patch_size=66, n_outputs=2, options={"depth": 3})
    with pytest.raises(ValueError, match="model"):
        build_model("resnet", in_channels=1, patch_size=66, n_outputs=2)


def test_random_mask_training_masks_only_in_training():
    torch.manual_seed(0)
    cnn = build_model("cnn", in_channels=1, patch_size=24, n_outputs=2,
                      options={"widths": [4], "hidden": [4], "mask_prob": 1.0,
                               "mask_keep": 0.25, "mask_patch": 6})  # fmt: skip
    x = torch.ones(3, 1, 24, 24)
    masked = cnn.train()._random_masks(x)
    assert (masked.flatten(1).mean(1) == 0.25).all()  # 4 of 16 cells kept in every input
    assert masked.unique().tolist() == [0.0, 1.0]
    cnn.eval()
    torch.testing.assert_close(cnn(x), cnn.head(cnn.encode(x)))  # no masking at evaluation
    with pytest.raises(ValueError, match="mask_keep"):
        build_model("cnn", in_channels=1, patch_size=24, n_outputs=2, options={"mask_keep": 0})
