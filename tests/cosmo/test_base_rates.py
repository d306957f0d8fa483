"""Type base rates from random masks of the generator's group sizes
(sop_cosmo.cosmo.maths.base_rates, sop_cosmo.cosmo.analysis.type_base_rates): the draws keep
each group's size, the shares sum to 1, and on maps with planted voids a generator that picks
the voids is far more void than its random masks."""

import numpy as np
import pytest

from sop_cosmo.cosmo.analysis import type_base_rates
from sop_cosmo.cosmo.config import AnalyzeConfig
from sop_cosmo.cosmo.contracts.patchfile import PatchArrays
from sop_cosmo.cosmo.maths.base_rates import random_grid_masks, share_intervals, type_shares
from sop_cosmo.cosmo.maths.group_types import (
    CLUSTER,
    OTHER,
    VOID,
    classify_groups,
    group_statistics_nu,
    upsample_masks,
)
from sop_cosmo.cosmo.stages.report import describe_type_base_rates, type_base_rate_rows

NAMES = ["Om", "s8"]
N, GRID, CELL = 30, 6, 4  # 30 maps, a 6×6 grid of 4-pixel cells (24×24 pixels)
SIGMA = [0.01]


def test_random_grid_masks_keep_every_groups_size_and_draw_each_group_alone():
    rng = np.random.default_rng(0)
    masks = (rng.random((5, 4, GRID, GRID)) < 0.3).astype(np.uint8)
    masks[:, 3] = masks[:, 2]  # two copies of one mask
    drawn = random_grid_masks(masks, np.random.default_rng(1))
    assert drawn.shape == masks.shape and drawn.dtype == np.uint8
    np.testing.assert_array_equal(drawn.sum((2, 3)), masks.sum((2, 3)))
    assert not np.array_equal(drawn, masks)
    assert not np.array_equal(drawn[:, 2], drawn[:, 3])  # copies get their own draws
    np.testing.assert_array_equal(random_grid_masks(masks, np.random.default_rng(1)), drawn)
    with pytest.raises(ValueError, match="masks"):
        random_grid_masks(masks[0], rng)


def test_type_shares_by_hand():
    types = np.array([[VOID, CLUSTER, OTHER], [VOID, VOID, OTHER]])
    weights = np.zeros((2, 3, 2))
    weights[0, :, 0] = [0.5, 0.5, 0.0]  # Om: void and cluster in map 0
    weights[1, :, 0] = [0.0, 0.0, 1.0]  # Om: other in map 1
    weights[0, :, 1] = [0.0, 1.0, 0.0]
    weights[1, :, 1] = [0.25, 0.75, 0.0]
    out = type_shares(types, weights, NAMES)
    # selected (w > 0 for some parameter): groups 0, 1 of map 0 and all three of map 1
    assert out["groups"] == pytest.approx({"void": 3 / 5, "cluster": 1 / 5, "other": 1 / 5})
    assert out["weighted"]["Om"] == pytest.approx({"void": 0.25, "cluster": 0.25, "other": 0.5})
    assert out["weighted"]["s8"] == pytest.approx({"void": 0.5, "cluster": 0.5, "other": 0.0})
    weights[1, 2] = 0.0  # an unselected group does not count
    weights[1, 0, 0] = 1.0
    assert type_shares(types, weights, NAMES)["groups"] == pytest.approx(
        {"void": 3 / 4, "cluster": 1 / 4, "other": 0.0}
    )
    with pytest.raises(ValueError, match="no group is selected"):
        type_shares(types, np.zeros_like(weights), NAMES)
    with pytest.raises(ValueError, match="do not match"):
        type_shares(types, weights[..., :1], NAMES)


def _planted_voids(seed=0):
    """Maps of weak noise (|ν| ≤ 0.5) whose left half (grid columns 0-2) is a planted void
    (ν = −3). Groups are 2×2-cell blocks: groups 0 and 1 in the void, 2 and 3 in the noise;
    the selector weights groups 0 and 1 for Om, all four evenly for s8."""
    rng = np.random.default_rng(seed)
    kappa = rng.uniform(-0.005, 0.005, (N, 1, GRID * CELL, GRID * CELL))
    kappa[..., : 3 * CELL] = -0.03
    masks = np.zeros((N, 4, GRID, GRID), dtype=np.uint8)
    for n in range(N):
        rows = [rng.choice(3, size=2, replace=False) for _ in range(2)]  # 2 of 3 per half
        for g in range(4):
            i, j = 2 * rows[g // 2][g % 2], 0 if g < 2 else 3
            masks[n, g, i : i + 2, j : j + 2] = 1
    weights = np.zeros((N, 4, 2))
    weights[:, :2, 0] = 0.5
    weights[:, :, 1] = 0.25
    return kappa, masks, weights


def _types(kappa, masks):
    pix = upsample_masks(masks, kappa.shape[-2:], patch=CELL)
    stats, _ = group_statistics_nu(kappa, pix, SIGMA, nu_void=1.0, nu_cluster=4.0)
    return classify_groups(stats, tau_void=0.6, tau_cluster=0.015)


def test_a_generator_that_picks_planted_voids_is_more_void_than_its_random_masks():
    kappa, masks, weights = _planted_voids()
    types = _types(kappa, masks)
    assert (types[:, :2] == VOID).all() and (types[:, 2:] == OTHER).all()
    runs = [{"masks": masks, "weights": weights, "types": types}]
    patches = PatchArrays(kappa=kappa.astype(np.float32), params=np.zeros((N, 2), "f4"),
                          cosmo_id=np.arange(N), param_names=NAMES, attrs={})  # fmt: skip
    cfg = AnalyzeConfig(nu_void=1.0, nu_cluster=4.0, batch_size=7, seed=3)
    kw = {"sigma_noise": np.array(SIGMA), "b_index": 0, "patch": CELL, "names": NAMES}
    out = type_base_rates(runs, patches, cfg, **kw)
    assert out["n_maps"] == N and out["n_seeds"] == 1 and out["n_selected_groups"] == 4 * N
    assert out["generator"] == pytest.approx({"void": 0.5, "cluster": 0.0, "other": 0.5})
    for block in (out["generator"], out["random"], *out["weighted"]["random"].values()):
        assert sum(block.values()) == pytest.approx(1.0)
    # a random 4-cell mask types void when ≥ 3 of its cells are among the 18 void cells
    # (≥ 60% void pixels): P = [C(18,3)·18 + C(18,4)] / C(36,4) = 0.302; 120 draws, SE 0.04
    chance = (816 * 18 + 3060) / 58905
    assert out["random"]["void"] == pytest.approx(chance, abs=0.13)
    assert out["random"]["cluster"] == 0.0
    assert out["weighted"]["generator"]["Om"]["void"] == pytest.approx(1.0)
    assert out["weighted"]["random"]["Om"]["void"] < 0.5
    # s8 weights every group evenly: its weighted shares are the count shares
    assert out["weighted"]["random"]["s8"] == pytest.approx(out["random"])
    # reproducible with the seed, and another seed draws other masks
    assert type_base_rates(runs, patches, cfg, **kw) == out
    other = type_base_rates(runs, patches, AnalyzeConfig(nu_void=1.0, seed=4), **kw)
    assert other["random"] != out["random"] and other["generator"] == out["generator"]
    # CIs over the maps (each its own cosmology here): they hold the point estimates, and the
    # void excess of a generator that picks the planted voids excludes 0
    ci = out["ci95"]
    for key in ("generator", "random"):
        for t, v in out[key].items():
            assert ci["groups"][key][t][0] <= v + 1e-12 <= ci["groups"][key][t][1] + 2e-12
    assert ci["groups"]["excess"]["void"][0] > 0.05
    assert ci["groups"]["excess"]["cluster"] == [0.0, 0.0]
    assert ci["weighted"]["Om"]["excess"]["void"][0] > 0.3
    text = describe_type_base_rates({"type_base_rates": out})
    assert "Above chance: void." in text and "95% CIs over test cosmologies" in text
    rows = {r["type"]: r for r in type_base_rate_rows({"type_base_rates": out})}
    lo, hi = ci["groups"]["excess"]["void"]
    assert rows["void"]["95% CI"] == f"[{lo:+.3f}, {hi:+.3f}]"
    # two seeds pool their groups
    both = type_base_rates(runs * 2, patches, cfg, **kw)
    assert both["n_seeds"] == 2 and both["n_selected_groups"] == 8 * N
    assert both["generator"] == out["generator"]


def test_patch_units_use_the_per_patch_rule():
    kappa, masks, weights = _planted_voids(seed=1)
    runs = [{"masks": masks, "weights": weights, "types": np.zeros((N, 4), np.int8)}]
    patches = PatchArrays(kappa=kappa.astype(np.float32), params=np.zeros((N, 2), "f4"),
                          cosmo_id=np.arange(N), param_names=NAMES, attrs={})  # fmt: skip
    out = type_base_rates(runs, patches, AnalyzeConfig(type_units="patch"), sigma_noise=None,
                          b_index=0, patch=CELL, names=NAMES)  # fmt: skip
    # void κ < 0: the planted half and about half of the noise, so most random masks (the
    # 1.0-ν rule of the noise units typed only 30% void)
    assert 0.6 < out["random"]["void"] < 1.0
    assert sum(out["random"].values()) == pytest.approx(1.0)


def test_share_intervals_resample_cosmologies_and_cover_a_generator_no_better_than_chance():
    rng = np.random.default_rng(5)
    s_, n_, g_ = 2, 40, 6
    types = rng.integers(0, 3, (s_, n_, g_))
    weights = rng.random((s_, n_, g_, 2)) * (rng.random((s_, n_, g_, 1)) < 0.5)
    weights[..., 0, :] += 0.1  # every map selects a group
    units = np.repeat(np.arange(8), 5)  # 8 cosmologies of 5 maps
    kw = {"units": units, "n_boot": 400, "seed": 1}
    same = share_intervals(types, types, weights, NAMES, **kw)
    assert all(ci == [0.0, 0.0] for ci in same["groups"]["excess"].values())
    other = share_intervals(types, rng.integers(0, 3, types.shape), weights, NAMES, **kw)
    for block in (other["groups"], *other["weighted"].values()):
        for t in ("void", "cluster", "other"):
            lo, hi = block["excess"][t]
            assert lo < 0 < hi  # both are uniform draws: no excess
            assert 0 < block["generator"][t][0] < 1 / 3 < block["generator"][t][1] < 1
    # resampling whole cosmologies of correlated maps widens the interval
    # (one seed, so that the seeds' resampling adds nothing to either)
    clustered = np.repeat(rng.integers(0, 3, (1, 8, g_)), 5, axis=1)
    one = (clustered, types[:1], weights[:1], NAMES)
    by_cosmo = share_intervals(*one, **kw)
    by_map = share_intervals(*one, **{**kw, "units": None})
    width = [np.diff(b["groups"]["generator"]["void"])[0] for b in (by_cosmo, by_map)]
    assert width[0] > 1.5 * width[1]
    assert share_intervals(types, types, weights, NAMES, **kw) == same
    with pytest.raises(ValueError, match="do not match"):
        share_intervals(types, types[:1], weights, NAMES, **kw)
