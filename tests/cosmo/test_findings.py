"""The findings prose follows the numbers: a CI excluding 0 (or a base rate) changes the text."""

import json

import pytest

from sop_cosmo.cosmo.stages.report import (
    contribution_rows,
    describe_baselines,
    describe_controls,
    describe_findings,
    load_json,
)


def _summary(diff_void_ci, om_void_ci=(0.5, 0.7), n_maps=100):
    ci = {"void": list(om_void_ci), "cluster": [0.05, 0.15], "other": [0.2, 0.4]}
    block = {"void": 0.6, "cluster": 0.1, "other": 0.3, "ci95": ci}
    s8 = {"void": 0.3, "cluster": 0.3, "other": 0.4,
          "ci95": {"void": [0.2, 0.4], "cluster": [0.25, 0.35], "other": [0.3, 0.5]}}  # fmt: skip
    return {
        "thresholds": {"void_sigma": 0.0, "cluster_sigma": 3.0},
        "contributions": {"Om": block, "s8": s8},
        "differences": {
            "void": {"value": 0.3, "ci95": list(diff_void_ci)},
            "cluster": {"value": -0.2, "ci95": [-0.3, 0.05]},
            "other": {"value": -0.1, "ci95": [-0.2, 0.1]},
        },
        "group_type_rates": {"void": 0.4, "cluster": 0.1, "other": 0.5},
        "purity": 0.5,
        "n_maps": n_maps,
    }


def test_a_difference_whose_ci_excludes_zero_is_a_conclusion():
    text = describe_findings(_summary((0.1, 0.5)))
    assert "Ωm relies more on void groups than σ8 does" in text
    assert "cluster groups than" not in text


def test_a_difference_whose_ci_includes_zero_is_not():
    text = describe_findings(_summary((-0.05, 0.5)))
    assert "relies more" not in text
    assert "every paired CI includes 0" in text


def test_preference_is_judged_against_the_base_rate():
    above = describe_findings(_summary((0.1, 0.5), om_void_ci=(0.45, 0.7)))
    inside = describe_findings(_summary((0.1, 0.5), om_void_ci=(0.35, 0.7)))
    assert "void groups get 0.600 [0.450, 0.700], more than its share" in above
    assert "void groups get 0.600 [0.350, 0.700], about its share" in inside


def test_few_maps_carry_a_caution():
    assert "Caution" in describe_findings(_summary((0.1, 0.5), n_maps=8))
    assert "Caution" not in describe_findings(_summary((0.1, 0.5), n_maps=200))


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
