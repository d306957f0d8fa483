"""Skill before interpretation, the claim gates, the bootstrap over cosmologies × seeds, and the
typing in noise units, on inputs whose answers are known by hand."""

import numpy as np
import pytest

from sop_cosmo.cosmo.maths.bootstrap import contributions, ensemble_bootstrap_means, percentile_ci
from sop_cosmo.cosmo.maths.claims import make_claims
from sop_cosmo.cosmo.maths.group_types import (
    CLUSTER,
    OTHER,
    VOID,
    classify_groups,
    cluster_fraction_nu,
    group_statistics,
    group_statistics_nu,
)
from sop_cosmo.cosmo.maths.skill import ensemble_skill, per_cosmology, r2_scores, skill_scores

# ------------------------------------------------------------------------------------ skill


def test_r2_and_the_constant_predictor_by_hand():
    true = np.array([[1.0, 10.0], [2.0, 10.0], [3.0, 13.0], [4.0, 11.0]])
    pred = np.array([[1.5, 11.0], [2.0, 11.0], [2.5, 11.0], [4.0, 11.0]])
    # column 0: SSE = 0.25 + 0 + 0.25 + 0 = 0.5; mean 2.5, SST = 2.25 + 0.25 + 0.25 + 2.25 = 5
    # column 1: SSE = 1 + 1 + 4 + 0 = 6; mean 11, SST = 1 + 1 + 4 + 0 = 6 -> R² = 0
    assert r2_scores(pred, true) == pytest.approx([0.9, 0.0])
    s = skill_scores(pred, true, train_mean=[2.0, 12.0], names=["Om", "s8"])
    assert s["r2"] == pytest.approx({"Om": 0.9, "s8": 0.0})
    assert s["mse"] == pytest.approx({"Om": 0.125, "s8": 1.5})
    # constant 2: (1 + 0 + 1 + 4) / 4; constant 12: (4 + 4 + 1 + 1) / 4
    assert s["mse_constant"] == pytest.approx({"Om": 1.5, "s8": 2.5})
    # predicting the test mean everywhere is R² = 0; the truth is R² = 1
    assert r2_scores(np.tile(true.mean(0), (4, 1)), true) == pytest.approx([0.0, 0.0])
    assert r2_scores(true, true) == pytest.approx([1.0, 1.0])


def test_r2_is_undefined_on_constant_targets_and_fails_the_gate():
    true = np.array([[0.3, 0.8]] * 3)
    s = skill_scores(true + 0.01, true, [0.3, 0.8], ["Om", "s8"])
    assert s["r2"] == {"Om": None, "s8": None}
    assert not ensemble_skill([s], 0.5)["passed"]


def test_ensemble_skill_needs_every_seed_and_parameter():
    def seed(om, s8):
        return {"r2": {"Om": om, "s8": s8}, "mse": {"Om": 1.0, "s8": 2.0},
                "mse_constant": {"Om": 3.0, "s8": 4.0}}  # fmt: skip

    good = ensemble_skill([seed(0.7, 0.6), seed(0.8, 0.55)], 0.5)
    assert good["passed"] and good["r2"] == pytest.approx({"Om": 0.75, "s8": 0.575})
    assert good["r2_per_seed"] == {"Om": [0.7, 0.8], "s8": [0.6, 0.55]}
    assert not ensemble_skill([seed(0.7, 0.6), seed(0.8, 0.45)], 0.5)["passed"]
    assert ensemble_skill([seed(0.7, 0.6)], 0.6)["passed"]  # ≥ the threshold passes


def test_per_cosmology_averages_maps_and_seeds():
    true = np.array([[0.2, 0.8], [0.2, 0.8], [0.4, 0.6]])
    preds = np.stack([true + 0.1, true - 0.1 + np.array([[0.0, 0.2], [0.0, 0.0], [0.0, 0.0]])])
    rows = per_cosmology(preds, true, [7, 7, 3], ["Om", "s8"])
    assert [r["cosmo_id"] for r in rows] == [3, 7] and [r["n_maps"] for r in rows] == [1, 2]
    assert rows[1]["true"] == pytest.approx({"Om": 0.2, "s8": 0.8})
    assert rows[1]["pred_mean"]["s8"] == pytest.approx(0.85)
    assert rows[1]["pred_seed_mean"]["Om"] == pytest.approx([0.3, 0.1])


# ----------------------------------------------------------------- bootstrap over cosmologies


def test_the_resampling_unit_is_the_cosmology():
    # Two cosmologies, every map of one has 0 and of the other 1: a replicate can only be the
    # mean of 0, 1 or 2 copies of each, never a mix of single maps.
    values = np.array([0.0] * 5 + [1.0] * 5)[None, :, None]
    ids = np.array([3] * 5 + [9] * 5)
    boot = ensemble_bootstrap_means(values, ids, n_boot=500, seed=0)[:, 0]
    assert set(np.round(boot, 12)) == {0.0, 0.5, 1.0}
    by_map = ensemble_bootstrap_means(values, None, n_boot=500, seed=0)[:, 0]
    assert len(set(np.round(by_map, 12))) > 3


def test_seeds_are_resampled_too():
    # Two seeds that disagree by a constant on every map: only seed resampling sees it.
    values = np.stack([np.zeros(20), np.ones(20)])[..., None]
    ids = np.arange(20) // 4
    boot = ensemble_bootstrap_means(values, ids, n_boot=400, seed=1)[:, 0]
    assert set(np.round(boot, 12)) <= {0.0, 0.5, 1.0} and boot.min() == 0.0
    fixed = ensemble_bootstrap_means(values, ids, n_boot=400, seed=1, resample_seeds=False)
    np.testing.assert_allclose(fixed, 0.5)


def _clustered(rng, n_cosmo, per, between):
    """Values per map: a cosmology effect of spread ``between`` plus map noise of spread 1."""
    effect = rng.normal(0.0, between, n_cosmo)
    ids = np.repeat(np.arange(n_cosmo), per)
    return (effect[ids] + rng.normal(0.0, 1.0, ids.size))[None, :, None], ids


def test_correlated_maps_widen_the_interval_and_keep_its_coverage():
    hits = {"cosmology": 0, "map": 0}
    widths = {"cosmology": [], "map": []}
    reps = 150
    for r in range(reps):
        rng = np.random.default_rng(r)
        values, ids = _clustered(rng, 12, 16, between=1.0)  # the true mean is 0
        for unit, u in (("cosmology", ids), ("map", None)):
            lo, hi = percentile_ci(ensemble_bootstrap_means(values, u, n_boot=300, seed=r))[0]
            hits[unit] += lo <= 0.0 <= hi
            widths[unit].append(hi - lo)
    assert hits["cosmology"] / reps >= 0.85  # bootstrap with 12 units: a little under 95%
    assert hits["map"] / reps <= 0.6  # treating 192 correlated maps as independent
    assert np.mean(widths["cosmology"]) > 2.5 * np.mean(widths["map"])
    # without a cosmology effect the two units agree
    rng = np.random.default_rng(5)
    values, ids = _clustered(rng, 40, 8, between=0.0)
    w_c = np.diff(percentile_ci(ensemble_bootstrap_means(values, ids, n_boot=2000, seed=0)))
    w_m = np.diff(percentile_ci(ensemble_bootstrap_means(values, None, n_boot=2000, seed=0)))
    assert w_c[0, 0] == pytest.approx(w_m[0, 0], rel=0.2)


def test_contributions_over_seeds_report_each_seed():
    rng = np.random.default_rng(0)
    n, g = 24, 4
    w = rng.dirichlet(np.ones(g), size=(2, n, 2)).transpose(0, 1, 3, 2)  # (S, N, G, P)
    types = rng.integers(0, 3, size=(2, n, g))
    ids = np.arange(n) // 3
    res = contributions(w, types, ["Om", "s8"], cosmo_id=ids, n_boot=200, seed=0)
    assert res["bootstrap_unit"] == "cosmology" and res["n_units"] == 8 and res["n_seeds"] == 2
    for s in range(2):
        one = contributions(w[s], types[s], ["Om", "s8"], cosmo_id=ids, n_boot=200, seed=0)
        assert res["per_seed"][s]["differences"] == one["differences"]
    mean_void = np.mean([p["contributions"]["Om"]["void"] for p in res["per_seed"]])
    assert res["contributions"]["Om"]["void"] == pytest.approx(mean_void)


# ----------------------------------------------------------------------------------- claims


def _contrib(diff_ci, per_seed_void=(0.2, 0.3), n_units=10):
    ci = {"void": [0.4, 0.6], "cluster": [0.1, 0.2], "other": [0.2, 0.4]}

    def block(v):
        return {"void": {"value": v, "ci95": [v - 0.01, v + 0.01]},
                "cluster": {"value": 0.0, "ci95": [-0.05, 0.05]},
                "other": {"value": -v, "ci95": [-v - 0.01, -v + 0.01]}}  # fmt: skip

    seeds = [{"differences": {"void": {"value": v}, "cluster": {"value": 0.01}},
              "preference": {"Om": {"void": {"value": 0.1}, "cluster": {"value": -0.01}},
                             "s8": {"void": {"value": -0.1}, "cluster": {"value": 0.01}}}}
             for v in per_seed_void]  # fmt: skip
    return {
        "contributions": {p: {"void": 0.5, "cluster": 0.15, "other": 0.35, "ci95": ci}
                          for p in ("Om", "s8")},
        "differences": {"void": {"value": 0.25, "ci95": list(diff_ci)},
                        "cluster": {"value": 0.01, "ci95": [-0.05, 0.07]},
                        "other": {"value": -0.26, "ci95": [-0.4, -0.1]}},
        "difference_params": ["Om", "s8"],
        "preference": {"Om": block(0.0), "s8": block(0.0)},
        "base_rates": {"void": 0.5, "cluster": 0.15, "other": 0.35},
        "per_seed": seeds, "n_units": n_units, "n_seeds": len(per_seed_void),
    }  # fmt: skip


SKILLED = {"passed": True, "min_r2": 0.5, "r2_per_seed": {"Om": [0.7], "s8": [0.6]}}
UNSKILLED = {"passed": False, "min_r2": 0.5, "r2_per_seed": {"Om": [0.7], "s8": [0.1]}}


def test_a_planted_difference_is_claimed_with_its_numbers():
    out = make_claims(_contrib((0.1, 0.4)), SKILLED, min_cosmologies=5)
    assert out["no_claim"] is None and len(out["claims"]) == 1
    claim = out["claims"][0]
    assert claim["kind"] == "difference" and claim["type"] == "void"
    assert (claim["parameter"], claim["compared_to"]) == ("Om", "s8")
    assert claim["value"] == 0.25 and claim["ci95"] == [0.1, 0.4]
    assert claim["per_seed"] == [0.2, 0.3] and claim["n_cosmologies"] == 10
    assert "Ωm relies more on void groups than σ8 does" in claim["text"]
    assert "[+0.100, +0.400] over 10 test cosmologies × 2 seed(s)" in claim["text"]
    # the other candidates were checked and failed the CI gate (other is not a claim type)
    assert {c["type"] for c in out["claim_checks"]} == {"void", "cluster"}
    assert sum(c["passed"] for c in out["claim_checks"]) == 1


def test_no_claim_without_skill_even_when_a_ci_excludes_zero():
    out = make_claims(_contrib((0.1, 0.4)), UNSKILLED, min_cosmologies=5)
    assert out["claims"] == []
    assert "no skill" in out["no_claim"] and "σ8 0.10" in out["no_claim"]


def test_no_claim_when_every_ci_includes_zero_or_seeds_disagree_or_too_few_cosmologies():
    out = make_claims(_contrib((-0.02, 0.4)), SKILLED, min_cosmologies=5)
    assert out["claims"] == [] and "no 95% CI" in out["no_claim"]
    out = make_claims(_contrib((0.1, 0.4), per_seed_void=(0.2, -0.05)), SKILLED, min_cosmologies=5)
    assert out["claims"] == [] and "disagree in sign" in out["no_claim"]
    out = make_claims(_contrib((0.1, 0.4), n_units=3), SKILLED, min_cosmologies=5)
    assert out["claims"] == [] and "3 test cosmologies are too few" in out["no_claim"]


# ------------------------------------------------------------------------- noise-unit typing


def _peaks_map():
    """Two bins of a 12×12 map, σ_noise 0.01 and 0.02: a 2×2 peak at ν = 5 in the top-left
    of bin 0 only, a trough at ν = −2 over the bottom half of both bins, 0.5ν elsewhere."""
    sigma = np.array([0.01, 0.02])
    nu = np.full((1, 2, 12, 12), 0.5)
    nu[0, 0, 1:3, 1:3] = 5.0
    nu[0, :, 6:, :] = -2.0
    return nu * sigma[None, :, None, None], sigma


def _masks():
    m = np.zeros((1, 3, 12, 12), dtype=bool)
    m[0, 0, :4, :4] = True  # the peak and its surroundings
    m[0, 1, 6:, :] = True  # the trough
    m[0, 2, :6, 6:] = True  # plain ground
    return m


def test_nu_typing_finds_the_planted_peak_and_trough_on_every_bin():
    kappa, sigma = _peaks_map()
    pooled, per_bin = group_statistics_nu(kappa, _masks(), sigma, nu_void=1.0, nu_cluster=4.0)
    # the peak group: 4 of its 16 pixels in bin 0, none in bin 1 -> pooled 4/32
    np.testing.assert_allclose(per_bin["cluster_fraction"][0, 0], [0.25, 0.0])
    assert pooled["cluster_fraction"][0, 0] == pytest.approx(0.125)
    np.testing.assert_allclose(per_bin["void_fraction"][0, 1], [1.0, 1.0])
    assert pooled["mean_kappa_sigma"][0, 1] == pytest.approx(-2.0)  # mean ν
    assert pooled["void_fraction"][0, 2] == 0.0 and pooled["cluster_fraction"][0, 2] == 0.0
    types = classify_groups(pooled, tau_void=0.6, tau_cluster=0.1)
    assert types.tolist() == [[CLUSTER, VOID, OTHER]]
    # typed on bin 0 alone the peak is a cluster, on bin 1 alone it is not
    by_bin = classify_groups(per_bin, tau_void=0.6, tau_cluster=0.1)
    assert by_bin[0, 0].tolist() == [CLUSTER, OTHER]
    np.testing.assert_allclose(
        cluster_fraction_nu(kappa, _masks(), sigma, 4.0), pooled["cluster_fraction"]
    )


def test_nu_thresholds_are_inclusive_and_independent_of_the_patch_spread():
    kappa, sigma = _peaks_map()
    pooled, _ = group_statistics_nu(kappa, _masks(), sigma, nu_void=2.0, nu_cluster=5.0)
    assert pooled["void_fraction"][0, 1] == 1.0  # ν = −2 ≤ −2
    assert pooled["cluster_fraction"][0, 0] == pytest.approx(0.125)  # ν = 5 ≥ 5
    # doubling the signal of the whole patch doubles ν (fixed σ_noise), while the per-patch
    # rule's κ/σ does not move: the patch's own σ doubles too
    strong, _ = group_statistics_nu(2 * kappa, _masks(), sigma, nu_void=1.0, nu_cluster=4.0)
    assert strong["mean_kappa_sigma"][0, 1] == pytest.approx(-4.0)
    weak = group_statistics(kappa[:, 0], _masks())["mean_kappa_sigma"]
    np.testing.assert_allclose(group_statistics(2 * kappa[:, 0], _masks())["mean_kappa_sigma"],
                               weak)  # fmt: skip


def test_nu_typing_rejects_a_wrong_sigma():
    kappa, sigma = _peaks_map()
    with pytest.raises(ValueError, match="one σ per bin"):
        group_statistics_nu(kappa, _masks(), sigma[:1], nu_void=1.0, nu_cluster=4.0)
    with pytest.raises(ValueError, match="> 0"):
        group_statistics_nu(kappa, _masks(), [0.01, 0.0], nu_void=1.0, nu_cluster=4.0)
    with pytest.raises(ValueError, match="every bin"):
        group_statistics_nu(kappa[:, 0], _masks(), sigma, nu_void=1.0, nu_cluster=4.0)


def test_other_type_code_is_unchanged():
    assert (VOID, CLUSTER, OTHER) == (0, 1, 2)
