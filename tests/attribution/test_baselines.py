"""Post-hoc baselines on tiny CNNs: shapes, the patch reduction, -F masks and RISE."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sop_cosmo.attribution import keep_top_patches, patch_feature_mask, patch_scores, rise_saliency
from sop_cosmo.attribution.baselines import METHODS, KernelShapF, OcclusionF, PosthocMethod


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny convolutions on a shared 2-core machine run ~10x faster on one thread.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _tiny_cnn(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(2, 4, 3), nn.LeakyReLU(), nn.Flatten(), nn.Linear(4 * 18 * 18, 2)
    ).eval()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_returns_the_input_shape_per_column(method):
    net = _tiny_cnn()
    x = torch.randn(2, 20, 20)
    explainer = METHODS[method].from_settings(net, layer=net[0], n_samples=12, n_steps=4)
    assert isinstance(explainer, PosthocMethod) and explainer.name == method
    attrs = [explainer.attribute(x, target=t, patch_size=5) for t in (0, 1)]
    for a in attrs:
        assert a.shape == x.shape and torch.isfinite(a).all()
    if method != "random":  # the random scores do not depend on the target
        assert not torch.equal(attrs[0], attrs[1])


def test_sampling_methods_are_seeded_and_leave_the_global_rng_alone():
    net = _tiny_cnn()
    x = torch.randn(2, 20, 20)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    shap = KernelShapF(net, n_samples=16)
    a = shap.attribute(x, 0, patch_size=5, seed=3)
    assert torch.rand(1) == before  # the global RNG did not move
    b = shap.attribute(x, 0, patch_size=5, seed=3)
    c = shap.attribute(x, 0, patch_size=5, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_occlusion_is_the_output_drop_of_each_patch_including_cut_ones():
    net = _tiny_cnn()
    x = torch.randn(2, 20, 22)  # 22 = 4·5 + 2: the last column of patches is cut
    net = nn.Sequential(nn.Flatten(), nn.Linear(2 * 20 * 22, 2)).eval()
    attr = OcclusionF(net).attribute(x, 1, patch_size=5, baseline=0.5)
    fmask = patch_feature_mask((20, 22), 5)
    for unit in (0, 4, int(fmask.max())):  # first, last of the first row (cut), last
        hidden = torch.where(fmask == unit, torch.tensor(0.5), x)
        drop = net(x[None])[0, 1] - net(hidden[None])[0, 1]
        inside = attr[(fmask == unit).expand_as(x)]
        assert torch.allclose(inside, drop.detach().expand_as(inside), atol=1e-5)


def test_patch_scores_sum_absolute_values_per_patch():
    fmask = patch_feature_mask((4, 4), 2)
    attr = torch.zeros(2, 4, 4)
    attr[0, 0, 0], attr[1, 0, 1] = -3.0, 1.0  # patch 0: |-3| + |1|
    attr[0, 3, 3] = 2.0  # patch 3
    assert patch_scores(attr, fmask).tolist() == [4.0, 0.0, 0.0, 2.0]


@pytest.mark.parametrize(("k", "n"), [(0.2, 121), (0.2, 25), (0.5, 9), (0.3, 100), (1.0, 7)])
def test_keep_top_patches_keeps_as_many_as_a_sop_group(k, n):
    from sop_cosmo.core import topk_rank_mask

    scores = torch.rand(n, generator=torch.Generator().manual_seed(n))
    keep = keep_top_patches(scores, k)
    n_keep = int(torch.ceil(k * torch.tensor(n)))  # SOP's generator's count
    assert int(keep.sum()) == n_keep
    assert torch.equal(keep, topk_rank_mask(scores, torch.tensor(n_keep)).bool())
    assert scores[keep].min() >= scores[~keep].max() if n_keep < n else keep.all()


def test_rise_ranks_the_only_region_the_model_reads_first():
    region = torch.zeros(1, 24, 24, dtype=torch.bool)
    region[:, 12:18, 6:12] = True  # grid patch (2, 1) of a 6-px grid

    def model(b):
        return (b * region).flatten(1).sum(1, keepdim=True)

    x = torch.rand(1, 24, 24) + 0.5
    sal = rise_saliency(model, x, n_masks=300, cell_size=6, seed=0)
    assert sal.shape == (1, 24, 24)
    scores = patch_scores(sal, patch_feature_mask((24, 24), 6))
    assert int(scores.argmax()) == 2 * 4 + 1
    # seeded: the same masks give the same saliency
    assert torch.equal(sal, rise_saliency(model, x, n_masks=300, cell_size=6, seed=0))


def test_bad_method_and_keep_fraction_are_refused():
    with pytest.raises(ValueError, match="method"):
        METHODS["fullgrad"].from_settings(_tiny_cnn()).attribute(
            torch.randn(2, 20, 20), 0, patch_size=5
        )
    with pytest.raises(ValueError, match="keep_fraction"):
        keep_top_patches(torch.rand(5), 0.0)
    with pytest.raises(ValueError, match="layer"):
        METHODS["layer_gradcam"].from_settings(_tiny_cnn()).attribute(
            torch.randn(2, 20, 20), 0, patch_size=5
        )
    with pytest.raises(ValueError, match="n_sample"):  # a setting no method takes
        METHODS["rise"].from_settings(_tiny_cnn(), n_sample=8)


def test_registry_lists_every_method_once_in_table_order():
    assert list(METHODS) == [
        "integrated_gradients", "kernel_shap", "lime", "layer_gradcam", "rise", "occlusion",
        "random",
    ]  # fmt: skip
    assert all(cls.name == name for name, cls in METHODS.items())
    assert "fullgrad" not in METHODS and METHODS.get("fullgrad") is None
