"""The findings prose: skill first, then the numbers, and findings only from the claims."""

import json

import pytest

from sop_cosmo.cosmo.stages.report import (
    contribution_rows,
    describe_baselines,
    describe_controls,
    describe_findings,
    load_json,
)


def _summary(claims=(), no_claim="no 95% CI over 10 test cosmologies × 2 seed(s) excludes 0",
             passed=True):  # fmt: skip
    ci = {"void": [0.5, 0.7], "cluster": [0.05, 0.15], "other": [0.2, 0.4]}
    block = {"void": 0.6, "cluster": 0.1, "other": 0.3, "ci95": ci}
    s8 = {"void": 0.3, "cluster": 0.3, "other": 0.4,
          "ci95": {"void": [0.2, 0.4], "cluster": [0.25, 0.35], "other": [0.3, 0.5]}}  # fmt: skip
    return {
        "thresholds": {"void_sigma": 0.0, "cluster_sigma": 4.0},
        "contributions": {"Om": block, "s8": s8},
        "differences": {
            "void": {"value": 0.3, "ci95": [0.1, 0.5]},
            "cluster": {"value": -0.2, "ci95": [-0.3, 0.05]},
            "other": {"value": -0.1, "ci95": [-0.2, 0.1]},
        },
        "group_type_rates": {"void": 0.4, "cluster": 0.1, "other": 0.5},
        "purity": 0.5,
        "n_maps": 100,
        "type_units": "noise",
        "typed_bins": [1, 2],
        "bootstrap": {"n_cosmologies": 10},
        "skill": {"r2": {"Om": 0.7, "s8": 0.62 if passed else 0.2},
                  "r2_per_seed": {"Om": [0.68, 0.72], "s8": [0.6, 0.64] if passed else [0.1, 0.3]},
                  "mse": {"Om": 0.001, "s8": 0.002}, "mse_constant": {"Om": 0.004, "s8": 0.006},
                  "min_r2": 0.5, "passed": passed, "n_seeds": 2},
        "claims": list(claims),
        "no_claim": None if claims else no_claim,
    }  # fmt: skip


def test_skill_comes_first_with_the_constant_predictor():
    text = describe_findings(_summary())
    assert text.index("**Skill**") < text.index("test maps** were analysed")
    assert "Ωm: R² 0.70 (per seed 0.68/0.72); MSE 0.001 against 0.004" in text
    assert "**No skill:**" in describe_findings(_summary(passed=False, no_claim="no skill"))


def test_findings_are_the_claims_word_for_word():
    claim = {"text": "Ωm relies more on void groups than σ8 does: Ωm − σ8 = +0.300"}
    text = describe_findings(_summary(claims=[claim]))
    assert "**Findings:**\n- Ωm relies more on void groups than σ8 does: Ωm − σ8 = +0.300." in text
    assert "No claim" not in text


def test_no_claim_gives_the_reason_and_states_nothing():
    # the void difference's CI excludes 0 here, yet without a claim no finding is written
    text = describe_findings(_summary())
    assert "No claim: no 95% CI over 10 test cosmologies × 2 seed(s) excludes 0." in text
    assert "relies more" not in text and "Conclusion" not in text
    old = _summary()
    del old["claims"]
    assert "predates the claim gates" in describe_findings(old)


def test_contribution_rows_carry_the_excess_over_base_rate():
    rows = contribution_rows(_summary((0.1, 0.5)))
    assert len(rows) == 6
    om_void = next(r for r in rows if (r["parameter"], r["type"]) == ("Om", "void"))
    assert om_void["excess"] == pytest.approx(0.2)
    assert (om_void["ci_low"], om_void["ci_high"]) == (0.5, 0.7)


def test_baselines_and_controls_verdicts():
    rows = [
        {"method": "sop", "mse_mean": 0.02, "purity": 0.7},
        {"method": "kernel_shap", "mse_mean": 0.03, "purity": 0.5},
        {"method": "occlusion", "mse_mean": 0.01, "purity": 0.4},
        {"method": "random", "mse_mean": 0.001, "purity": 0.9},
    ]
    text = describe_baselines(rows)
    assert "is higher than the best -F baseline (occlusion" in text
    assert "purity 0.700 is higher than the best baseline's (kernel_shap" in text
    text = describe_controls({"positive": {"passed": True}, "negative": {"passed": False}})
    assert "positive control passed" in text and "negative control FAILED" in text
    # a failure that is only the skill gate says so, a real miss does not
    checks = {"void_sign": True, "void_claimed": False}
    unskilled = {"passed": False, "checks": checks, "skill": {"passed": False}}
    assert "lacked skill" in describe_controls({"positive": unskilled})
    missed = {**unskilled, "checks": {**checks, "void_sign": False}}
    assert "lacked skill" not in describe_controls({"positive": missed})
    # with the claim gates recorded, the text names the ones that failed, and only those
    gates = {"skill": True, "cosmologies": True, "ci_excludes_zero": True, "seeds_agree": False}
    split = {"passed": False, "checks": checks, "skill": {"passed": True},
             "difference_gates": {"void": gates, "cluster": {**gates, "skill": False}}}  # fmt: skip
    text = describe_controls({"positive": split})
    assert "the training seeds disagree in sign" in text and "lacked skill" not in text


def test_load_json_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"summary\.json: not found; run analyze"):
        load_json(tmp_path / "summary.json", what="run analyze")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        load_json(bad, what="run analyze")
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"a": 1}))
    assert load_json(good, what="x") == {"a": 1}
