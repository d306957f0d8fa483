"""Void/cluster analysis: statistics, classification, purity and bootstrap on hand-made inputs."""

import numpy as np
import pytest

from sop_cosmo.cosmo.maths.bootstrap import bootstrap_means, contributions, percentile_ci
from sop_cosmo.cosmo.maths.group_types import (
    CLUSTER,
    OTHER,
    VOID,
    classify_groups,
    group_statistics,
    purity,
    type_weights,
    upsample_masks,
)
from sop_cosmo.cosmo.maths.selection import map_indices
from sop_cosmo.cosmo.maths.sweep import threshold_sweep

# ------------------------------------------------------------------------------- upsampling


def test_upsample_masks_covers_blocks_and_cuts_the_last_one():
    grid = np.zeros((1, 2, 2, 2), dtype=np.uint8)
    grid[0, 0, 0, 0] = 1  # top-left cell
    grid[0, 1, 1, 1] = 1  # bottom-right cell, cut by the image edge
    pix = upsample_masks(grid, (5, 5), patch=3)
    assert pix.shape == (1, 2, 5, 5) and pix.dtype == bool
    expect0 = np.zeros((5, 5), bool)
    expect0[:3, :3] = True
    expect1 = np.zeros((5, 5), bool)
    expect1[3:, 3:] = True
    np.testing.assert_array_equal(pix[0, 0], expect0)
    np.testing.assert_array_equal(pix[0, 1], expect1)
    # default patch = ceil(H / gh) = 3 here
    np.testing.assert_array_equal(upsample_masks(grid, (5, 5)), pix)


@pytest.mark.parametrize(("shape", "patch"), [((24, 24), 4), ((24, 22), 5), ((9, 9), 4)])
def test_upsample_masks_matches_how_the_sop_backbone_masks_pixels(shape, patch):
    # The analysis must measure exactly the pixels the SOP model kept: compare with the
    # backbone's own expand_mask, including cut last cells and a grid that a smaller cell
    # size would also give (9×9 pixels, 4-px cells: a 3×3 grid, like 3-px cells).
    import torch
    from torch import nn

    from sop_cosmo.core.backbones import ImageBackbone

    bb = ImageBackbone(nn.Flatten(), nn.Linear(shape[0] * shape[1], 1), image_size=shape,
                       patch_size=patch, in_channels=1, n_outputs=1, pooled_dim=1)  # fmt: skip
    gh, gw = bb.grid
    unit = torch.rand(2, 3, gh * gw, generator=torch.Generator().manual_seed(0)) < 0.4
    x = torch.zeros(2, 1, *shape)
    expected = bb.expand_mask(unit.float(), x)[:, :, 0] > 0.5  # (2, 3, H, W)
    grid = unit.reshape(2, 3, gh, gw).numpy().astype(np.uint8)
    np.testing.assert_array_equal(upsample_masks(grid, shape, patch=patch), expected.numpy())


def test_upsample_masks_rejects_a_grid_that_does_not_tile():
    with pytest.raises(ValueError, match="does not tile"):
        upsample_masks(np.ones((1, 1, 3, 3)), (5, 5), patch=4)
    with pytest.raises(ValueError, match="expected"):
        upsample_masks(np.ones((3, 3)), (3, 3))


# ------------------------------------------------------------------------------- statistics


def _hand_map():
    """A 7×7 map: flat 1 with one peak (10) at (2, 2) and one minimum (-5) at (4, 4)."""
    k = np.ones((7, 7))
    k[2, 2] = 10.0
    k[4, 4] = -5.0
    k[5:, :2] = -1.0  # a small negative corner
    return k


def test_group_statistics_on_a_hand_made_map():
    k = _hand_map()
    sigma = k.std()
    masks = np.zeros((1, 3, 7, 7), bool)
    masks[0, 0, 1:4, 1:4] = True  # around the peak
    masks[0, 1, 3:6, 3:6] = True  # around the minimum
    # group 2 is empty
    st = group_statistics(k[None], masks, void_sigma=0.0, cluster_sigma=2.0)

    assert st["mask_fraction"][0].tolist() == pytest.approx([9 / 49, 9 / 49, 0.0])
    assert st["mean_kappa_sigma"][0, 0] == pytest.approx((8 + 10) / 9 / sigma)
    assert st["mean_kappa_sigma"][0, 1] == pytest.approx((8 - 5) / 9 / sigma)
    # κ = 10 > 2σ (σ ≈ 1.65); nothing else is above 2σ
    assert 10 > 2 * sigma > 1
    assert st["cluster_fraction"][0].tolist() == pytest.approx([1 / 9, 0.0, 0.0])
    assert st["void_fraction"][0].tolist() == pytest.approx([0.0, 1 / 9, 0.0])
    assert st["n_peaks"][0].tolist() == [1, 0, 0]
    assert st["n_minima"][0].tolist() == [0, 1, 0]
    # an empty group has zeros, never NaN
    assert all(np.isfinite(v).all() for v in st.values())


def test_void_sigma_moves_the_void_pixel_threshold():
    k = _hand_map()
    masks = np.ones((1, 1, 7, 7), bool)
    below0 = group_statistics(k[None], masks, void_sigma=0.0)["void_fraction"][0, 0]
    below_sig = group_statistics(k[None], masks, void_sigma=0.7)["void_fraction"][0, 0]
    assert below0 == pytest.approx(5 / 49)  # 4 corner pixels + the minimum
    assert below_sig == pytest.approx(48 / 49)  # 0.7σ ≈ 1.15 > 1: all but the peak count
    assert 10 > 0.7 * k.std() > 1


def test_group_statistics_uses_the_sign_of_kappa():
    # the same pattern, shifted down: the physical zero decides what a void pixel is
    k = _hand_map()
    masks = np.ones((1, 1, 7, 7), bool)
    up = group_statistics(k[None], masks)
    down = group_statistics(k[None] - 2.0, masks)
    assert up["void_fraction"][0, 0] < 0.2 < 0.9 < down["void_fraction"][0, 0]
    assert up["mean_kappa_sigma"][0, 0] > 0 > down["mean_kappa_sigma"][0, 0]


def test_group_statistics_bad_inputs():
    k = _hand_map()[None]
    with pytest.raises(ValueError, match="constant"):
        group_statistics(np.zeros((1, 4, 4)), np.ones((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="upsample_masks"):
        group_statistics(k, np.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="one bin"):
        group_statistics(k[:, None], np.ones((1, 1, 7, 7)))


# --------------------------------------------------------------------------- classification


def _stats(mean, void, cluster):
    return {
        "mean_kappa_sigma": np.array([mean], float),
        "void_fraction": np.array([void], float),
        "cluster_fraction": np.array([cluster], float),
    }


def test_classify_void_cluster_other():
    st = _stats(
        mean=[-0.5, -0.5, 0.4, 0.1, -0.2, -0.1],
        void=[0.7, 0.6, 0.7, 0.2, 0.5, 0.59],
        cluster=[0.0, 0.0, 0.0, 0.03, 0.0, 0.01],
    )
    types = classify_groups(st, tau_void=0.6, tau_cluster=0.015)
    # void; void at exactly τ_v (≥); mean κ > 0 is never a void; cluster; too few void
    # pixels; both below their thresholds
    assert types.tolist() == [[VOID, VOID, OTHER, CLUSTER, OTHER, OTHER]]
    assert types.dtype == np.int8


def test_classify_both_tests_takes_the_larger_relative_margin():
    st = _stats(
        mean=[-0.3, -0.3, -0.3],
        # void margins (f − 0.5)/0.5: 0.6, 0.2, 0.2
        void=[0.8, 0.6, 0.6],
        # cluster margins (f − 0.02)/0.02: 0.5, 1.0, 0.2 (a tie up to rounding)
        cluster=[0.03, 0.04, 0.024],
    )
    types = classify_groups(st, tau_void=0.5, tau_cluster=0.02)
    assert types.tolist() == [[VOID, CLUSTER, CLUSTER]]


def test_classify_an_exact_tie_goes_to_cluster():
    # The third case above is no tie in floating point ((0.6 − 0.5)/0.5 < (0.024 − 0.02)/0.02
    # by one ulp); dyadic values tie exactly: (0.75 − 0.5)/0.5 = (0.375 − 0.25)/0.25 = 0.5.
    st = _stats(mean=[-0.3], void=[0.75], cluster=[0.375])
    assert (0.75 - 0.5) / 0.5 == (0.375 - 0.25) / 0.25
    assert classify_groups(st, tau_void=0.5, tau_cluster=0.25).tolist() == [[CLUSTER]]
    # one step either way and the larger margin wins
    st_v = _stats(mean=[-0.3], void=[0.875], cluster=[0.375])
    assert classify_groups(st_v, tau_void=0.5, tau_cluster=0.25).tolist() == [[VOID]]


def test_classify_hand_made_map_end_to_end():
    # A void, a cluster and a flat region in one 12×12 map of 4×4 cells.
    k = np.full((12, 12), 0.1)
    k[0:4, 0:4] = -0.5  # a void cell
    k[5, 5] = 3.0  # one high pixel inside the middle cell
    grid = np.zeros((1, 3, 3, 3), np.uint8)
    grid[0, 0, 0, 0] = 1
    grid[0, 1, 1, 1] = 1
    grid[0, 2, 2, 2] = 1
    st = group_statistics(k[None], upsample_masks(grid, (12, 12)))
    assert st["void_fraction"][0, 0] == 1.0 and st["cluster_fraction"][0, 1] == 1 / 16
    assert classify_groups(st).tolist() == [[VOID, CLUSTER, OTHER]]


def test_classify_rejects_bad_thresholds():
    with pytest.raises(ValueError, match="tau_void"):
        classify_groups(_stats([0.0], [0.0], [0.0]), tau_void=0.0)
    with pytest.raises(ValueError, match="missing"):
        classify_groups({"void_fraction": np.zeros((1, 1))})


# ----------------------------------------------------------------------------------- purity


def test_purity_by_hand():
    st = {
        "void_fraction": np.array([[0.9, 0.1, 0.6, 0.3]]),
        "cluster_fraction": np.array([[0.0, 0.02, 0.05, 0.015]]),
    }
    selected = np.zeros((1, 4, 2), bool)
    selected[0, [0, 1, 3], 0] = True  # p0: masks 0, 1, 3
    selected[0, [2, 3], 1] = True  # p1: masks 2, 3
    # p0: cluster > 0.015 -> mask 1 only: 1/3; void > 0.6 -> mask 0 only: 1/3
    # p1: cluster: mask 2 (0.05) yes, mask 3 (0.015, not >) no: 1/2; void: 0.6 not > 0.6: 0/2
    expect = np.mean([1 / 3, 1 / 3, 1 / 2, 0.0])
    assert purity(st, selected, tau_void=0.6, tau_cluster=0.015) == pytest.approx(expect)


def test_purity_whole_map_baseline_and_errors():
    st = {"void_fraction": np.array([[0.7], [0.2]]), "cluster_fraction": np.array([[0.0], [0.1]])}
    # G = 1, all selected (a method without groups): 1/2 cluster, 1/2 void for both params
    assert purity(st, np.ones((2, 1, 2), bool)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no mask is selected"):
        purity(st, np.zeros((2, 1, 2), bool))
    with pytest.raises(ValueError, match="selected"):
        purity(st, np.ones((2, 3, 2), bool))


# -------------------------------------------------------------------------------- bootstrap


def test_type_weights_sums_per_type():
    w = np.array([[[0.5, 0.1], [0.3, 0.0], [0.2, 0.9]]])  # (1, 3, 2)
    t = np.array([[VOID, VOID, OTHER]])
    np.testing.assert_allclose(type_weights(w, t)[0], [[0.8, 0.0, 0.2], [0.1, 0.0, 0.9]])


def _synthetic(rng, n, g=6, rho=0.0):
    """Weights (N, G, 2) that sum to 1 per map; group 0 is a void whose Om weight has mean 0.3.

    The s8 weight of group 0 is correlated with the Om weight (coefficient rho); the rest of
    each column is spread over groups 1.. uniformly.
    """
    a = rng.uniform(0.1, 0.5, n)
    b = np.clip(rho * a + (1 - rho) * rng.uniform(0.1, 0.5, n) + 0.05, 0, 1)
    w = np.zeros((n, g, 2))
    w[:, 0, 0], w[:, 0, 1] = a, b
    w[:, 1:, 0] = ((1 - a) / (g - 1))[:, None]
    w[:, 1:, 1] = ((1 - b) / (g - 1))[:, None]
    types = np.full((n, g), OTHER)
    types[:, 0] = VOID
    return w, types


def test_bootstrap_ci_covers_the_true_mean():
    # Om's void contribution is uniform(0.1, 0.5): true mean 0.3; s8's is 0.35.
    hits_om = hits_diff = 0
    reps = 120
    for r in range(reps):
        rng = np.random.default_rng(1000 + r)
        w, types = _synthetic(rng, 40)
        res = contributions(w, types, ["Om", "s8"], n_boot=400, seed=r)
        lo, hi = res["contributions"]["Om"]["ci95"]["void"]
        hits_om += lo <= 0.3 <= hi
        dlo, dhi = res["differences"]["void"]["ci95"]
        hits_diff += dlo <= -0.05 <= dhi
    assert hits_om / reps >= 0.85
    assert hits_diff / reps >= 0.85
    # and the interval is not vacuous: wide enough to cover, narrow enough to say something
    assert hi - lo < 0.1


def test_paired_difference_ci_is_narrower_than_unpaired_when_correlated():
    rng = np.random.default_rng(7)
    w, types = _synthetic(rng, 60, rho=0.9)
    res = contributions(w, types, ["Om", "s8"], n_boot=2000, seed=3)
    paired = np.diff(res["differences"]["void"]["ci95"])[0]
    per_map = type_weights(w, types)[:, :, VOID]  # (N, 2)
    # unpaired: Om and s8 resampled independently
    boot_om = bootstrap_means(per_map[:, 0], 2000, seed=11)
    boot_s8 = bootstrap_means(per_map[:, 1], 2000, seed=12)
    unpaired = np.diff(percentile_ci(boot_om - boot_s8))[0]
    assert paired < 0.5 * unpaired
    assert res["differences"]["void"]["value"] == pytest.approx(
        per_map[:, 0].mean() - per_map[:, 1].mean()
    )


def test_contributions_base_rates_and_preference():
    rng = np.random.default_rng(0)
    w, types = _synthetic(rng, 30, g=5)
    res = contributions(w, types, ["Om", "s8"], n_boot=200, seed=0)
    assert res["base_rates"] == pytest.approx({"void": 0.2, "cluster": 0.0, "other": 0.8})
    om = res["contributions"]["Om"]
    assert om["void"] + om["cluster"] + om["other"] == pytest.approx(1.0)
    assert res["preference"]["Om"]["void"]["value"] == pytest.approx(om["void"] - 0.2)
    for t in ("void", "cluster", "other"):
        lo, hi = om["ci95"][t]
        assert lo <= om[t] <= hi
    assert res["difference_params"] == ["Om", "s8"]


def test_contributions_are_deterministic_given_the_seed():
    rng = np.random.default_rng(0)
    w, types = _synthetic(rng, 30)
    a = contributions(w, types, ["Om", "s8"], n_boot=100, seed=5)
    b = contributions(w, types, ["Om", "s8"], n_boot=100, seed=5)
    c = contributions(w, types, ["Om", "s8"], n_boot=100, seed=6)
    assert a == b and a != c


def test_differences_need_om_and_s8_or_two_parameters():
    rng = np.random.default_rng(0)
    w, types = _synthetic(rng, 10)
    res = contributions(w, types, ["A", "B"], n_boot=50)
    assert res["difference_params"] == ["A", "B"]
    w3 = np.concatenate([w, w[..., :1]], axis=2)
    res3 = contributions(w3, types, ["s8", "H0", "Om"], n_boot=50)
    assert res3["difference_params"] == ["Om", "s8"]
    res_none = contributions(w3, types, ["A", "B", "C"], n_boot=50)
    assert "differences" not in res_none


def test_threshold_sweep_matches_a_direct_classification():
    rng = np.random.default_rng(2)
    n, g = 20, 5
    st = {
        "mean_kappa_sigma": rng.normal(size=(n, g)),
        "void_fraction": rng.uniform(size=(n, g)),
        "cluster_fraction": rng.uniform(0, 0.05, size=(n, g)),
    }
    w = rng.dirichlet(np.ones(g), size=(n, 2)).transpose(0, 2, 1)
    cf4 = st["cluster_fraction"] / 2
    rows = threshold_sweep(st, {3.0: st["cluster_fraction"], 4.0: cf4}, w, ["Om", "s8"],
                           tau_void=[0.5, 0.6], tau_cluster=[0.01, 0.02])  # fmt: skip
    assert len(rows) == 2 * 2 * 2
    row = next(
        r for r in rows if (r["cluster_sigma"], r["tau_void"], r["tau_cluster"]) == (4.0, 0.6, 0.02)
    )
    types = classify_groups({**st, "cluster_fraction": cf4}, tau_void=0.6, tau_cluster=0.02)
    assert row["Om_cluster"] == pytest.approx(type_weights(w, types)[:, 0, CLUSTER].mean())
    assert row["rate_void"] == pytest.approx((types == VOID).mean())
    assert row["purity"] == pytest.approx(
        purity({**st, "cluster_fraction": cf4}, w > 0, tau_void=0.6, tau_cluster=0.02)
    )


def test_map_indices_spread_evenly():
    assert map_indices(10, None).tolist() == list(range(10))
    assert map_indices(10, 20).tolist() == list(range(10))
    assert map_indices(10, 3).tolist() == [0, 4, 9]  # round half to even: 4.5 -> 4
    with pytest.raises(ValueError, match="max_maps"):
        map_indices(10, 0)
