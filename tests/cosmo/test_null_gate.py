"""The smallest detectable difference, the permuted-label null gate, the cosmology bootstrap of
the controls' paired gain, and ``--null-summary`` on the command line (all fast)."""

import json

import h5py
import numpy as np
import pytest

from sop_cosmo.cli import main
from sop_cosmo.cosmo.analysis_files import read_null_summary
from sop_cosmo.cosmo.maths.bootstrap import contributions, paired_differences
from sop_cosmo.cosmo.maths.claims import DETECTABLE_FACTOR, detectable, make_claims
from sop_cosmo.cosmo.stages.analyse import analyze
from sop_cosmo.cosmo.stages.controls import paired_gain

SKILLED = {"passed": True, "min_r2": 0.5, "r2_per_seed": {"Om": [0.7], "s8": [0.6]}}


# ------------------------------------------------------------------- detectable difference


def test_detectable_is_2p80_bootstrap_standard_errors():
    assert DETECTABLE_FACTOR == pytest.approx(1.959964 + 0.841621, abs=1e-5)
    assert detectable(0.01, 10) == pytest.approx(0.028016, abs=1e-6)
    assert detectable(None, 10) is None and detectable(0.01, 1) is None


def test_detectable_from_a_synthetic_bootstrap_over_cosmologies():
    # 12 cosmologies × 10 maps; the void difference of a map is its cosmology's value plus a
    # little map noise, so the bootstrap SE of the mean is that of 12 cosmology means.
    rng = np.random.default_rng(3)
    n_c, per = 12, 10
    ids = np.repeat(np.arange(n_c), per)
    v = np.repeat(rng.normal(0.0, 0.1, n_c), per) + rng.normal(0.0, 0.005, n_c * per)
    w = np.zeros((n_c * per, 2, 2))  # group 0 void, group 1 other; Om − s8 on void = v
    w[:, 0, 0], w[:, 0, 1] = 0.5 + v / 2, 0.5 - v / 2
    w[:, 1] = 1.0 - w[:, 0]
    types = np.tile([0, 2], (n_c * per, 1))
    contrib = contributions(w, types, ["Om", "s8"], cosmo_id=ids, n_boot=4000, seed=0)
    m = np.array([v[ids == c].mean() for c in range(n_c)])
    se_plugin = np.sqrt(((m - m.mean()) ** 2).sum()) / n_c  # bootstrap SE of a mean of n_c
    se = contrib["se"]["differences"]["void"]
    assert se == pytest.approx(se_plugin, rel=0.08)
    out = make_claims(contrib, SKILLED, min_cosmologies=5)
    void = next(c for c in out["claim_checks"] if c["kind"] == "difference" and c["type"] == "void")
    assert void["se"] == se and void["detectable"] == pytest.approx(DETECTABLE_FACTOR * se)
    # no claim here (the CI includes 0): the reason says what the run could have detected
    assert out["claims"] == [] and "no evidence: the run could have detected" in out["no_claim"]
    assert f"|Δ| ≥ {void['detectable']:.3f} (void)" in out["no_claim"]


# -------------------------------------------------------------------------------- null gate


def _contrib(value=0.25):
    """One skilled candidate that passes every other gate: the void difference Om − s8."""
    zero = {"value": 0.0, "ci95": [-0.05, 0.05]}
    pref = {p: {t: dict(zero) for t in ("void", "cluster", "other")} for p in ("Om", "s8")}
    seed = {"differences": {"void": {"value": value}, "cluster": {"value": 0.01}},
            "preference": {p: {t: {"value": 0.0} for t in ("void", "cluster")}
                           for p in ("Om", "s8")}}  # fmt: skip
    se = {"differences": {"void": 0.05, "cluster": 0.03, "other": 0.02},
          "preference": {p: {t: 0.02 for t in ("void", "cluster", "other")}
                         for p in ("Om", "s8")}}  # fmt: skip
    return {
        "contributions": {p: {"void": 0.5, "cluster": 0.15, "other": 0.35} for p in ("Om", "s8")},
        "differences": {
            "void": {"value": value, "ci95": [value - 0.1, value + 0.1]},
            "cluster": {"value": 0.01, "ci95": [-0.05, 0.07]},
            "other": dict(zero),
        },
        "difference_params": ["Om", "s8"],
        "preference": pref,
        "base_rates": {"void": 0.5, "cluster": 0.15, "other": 0.35},
        "se": se,
        "per_seed": [seed, seed],
        "n_units": 10,
        "n_seeds": 2,
    }


def _null(void_value, claims=()):
    """A null summary: its candidates, with the void difference at ``void_value``."""
    checks = [
        {"kind": "difference", "type": t, "parameter": "s8" if v < 0 else "Om", "value": v}
        for t, v in (("void", void_value), ("cluster", 0.02))
    ]
    checks += [{"kind": "preference", "type": t, "parameter": p, "value": 0.01}
               for p in ("Om", "s8") for t in ("void", "cluster")]  # fmt: skip
    return {"claims": list(claims), "claim_checks": checks, "no_claim": "no skill"}


def _void(out):
    return next(c for c in out["claim_checks"] if c["kind"] == "difference" and c["type"] == "void")


def test_without_a_null_the_gate_is_not_run_and_the_claim_stands():
    out = make_claims(_contrib(), SKILLED, min_cosmologies=5)
    assert _void(out)["null_gate"] == "not run" and _void(out)["null_value"] is None
    assert len(out["claims"]) == 1 and out["no_claim"] is None


def test_an_effect_larger_than_the_null_passes_the_null_gate():
    # the sign of the null's value does not matter: |−0.1| < |0.25|
    out = make_claims(_contrib(), SKILLED, min_cosmologies=5, null=_null(-0.1))
    assert _void(out)["null_gate"] == "passed" and _void(out)["null_value"] == -0.1
    assert [c["type"] for c in out["claims"]] == ["void"] and out["no_claim"] is None
    assert "null_gate" not in out["claims"][0] and out["claims"][0]["detectable"] > 0


def test_an_effect_no_larger_than_the_null_is_not_claimed():
    out = make_claims(_contrib(), SKILLED, min_cosmologies=5, null=_null(0.3))
    assert _void(out)["null_gate"] == "failed" and out["claims"] == []
    assert out["no_claim"].startswith("the effects that pass the other gates do not exceed the "
                                      "permuted-label null's: difference Ωm/void |0.250| vs "
                                      "|0.300|")  # fmt: skip
    assert "no evidence: the run could have detected" in out["no_claim"]


def test_a_null_that_made_a_claim_stops_every_claim():
    null = _null(0.0, claims=[{"text": "σ8 relies more on void groups than Ωm does"}])
    out = make_claims(_contrib(), SKILLED, min_cosmologies=5, null=null)
    assert out["claims"] == [] and all(c["null_gate"] == "failed" for c in out["claim_checks"])
    assert out["no_claim"].startswith("the permuted-label null made 1 claim(s)")
    # an earlier gate is still named first, and the null's claim is said too
    out = make_claims(_contrib(), {**SKILLED, "passed": False}, min_cosmologies=5, null=null)
    assert out["no_claim"].startswith("the models have no skill")
    assert "the permuted-label null made 1 claim(s) too" in out["no_claim"]


# ----------------------------------------------------------------- paired gain (controls)


def _groups_h5(path, v, ids):
    """groups.h5 with a void and an other group per map; per-map void Om − s8 difference v."""
    n = len(v)
    w = np.zeros((n, 2, 2), dtype="f4")
    w[:, 0, 0], w[:, 0, 1] = 0.5 + v / 2, 0.5 - v / 2
    w[:, 1] = 1.0 - w[:, 0]
    with h5py.File(path, "w") as f:
        f["weights"], f["types"] = w, np.tile(np.array([0, 2], "i1"), (n, 1))
        f["cosmo_id"] = ids
        f.attrs["param_names"] = ["Om", "s8"]
    return path


def test_paired_gain_resamples_cosmologies(tmp_path):
    # 8 cosmologies × 20 maps; the maps of a cosmology are perfectly correlated (one value)
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(8), 20)
    v = np.repeat(rng.normal(0.1, 0.1, 8), 20)
    trained = _groups_h5(tmp_path / "t.h5", v, ids)
    untrained = _groups_h5(tmp_path / "u.h5", np.zeros_like(v), ids)
    gain = paired_gain(trained, untrained, n_boot=2000, seed=0)
    lo, hi = gain["void"]["ci95"]
    assert gain["void"]["value"] == pytest.approx(v.mean(), abs=1e-6)
    diff = np.stack([v, np.zeros_like(v), -v], 1)  # void, cluster(0), other
    _, by_map = paired_differences(diff, np.zeros_like(diff), n_boot=2000, seed=0)
    _, by_cosmo = paired_differences(diff, np.zeros_like(diff), units=ids, n_boot=2000, seed=0)
    assert [lo, hi] == pytest.approx(by_cosmo[0].tolist(), abs=1e-6)
    # 8 units, not 160 maps: the interval is about sqrt(20) ≈ 4.5 times wider
    assert hi - lo > 3 * (by_map[0, 1] - by_map[0, 0])
    other = _groups_h5(tmp_path / "o.h5", v, ids[::-1].copy())
    with pytest.raises(ValueError, match="different map sets"):
        paired_gain(trained, other, n_boot=10, seed=0)


# --------------------------------------------------------------------------- CLI option


def test_cli_null_summary_that_is_missing_is_one_line(tmp_path, capsys):
    null = tmp_path / "null.json"
    argv = ["analyze", "--checkpoint", str(tmp_path / "m.pt"), "--data", str(tmp_path / "t.h5"),
            "--out", str(tmp_path / "A"), "--null-summary", str(null), "--quiet"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"--null-summary {null}: no such file" in err
    assert not (tmp_path / "A").exists()


def test_cli_null_summary_is_checked_by_the_stage_reader_first(tmp_path, capsys):
    # the command line runs the stage's own check, so a malformed file fails there too, before
    # the missing checkpoint and before the output folder exists
    bad = tmp_path / "summary.json"
    bad.write_text("not json")
    for null, says in ((bad, "not JSON"), (tmp_path, "is a folder, not a file")):
        argv = ["analyze", "--checkpoint", str(tmp_path / "m.pt"), "--data",
                str(tmp_path / "t.h5"), "--out", str(tmp_path / "A"), "--null-summary",
                str(null), "--quiet"]  # fmt: skip
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and f"--null-summary {null}: {says}" in err
        assert not (tmp_path / "A").exists()


@pytest.mark.parametrize(("content", "says"), [("not json", "not JSON"),
                                               ('{"claims": []}', "no claim_checks")])  # fmt: skip
def test_a_null_summary_that_is_not_a_summary_is_one_line(tmp_path, content, says):
    path = tmp_path / "summary.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=says) as err:
        read_null_summary(str(path))
    assert str(path) in str(err.value) and len(str(err.value).splitlines()) == 1
    # the stage checks it before loading any model, so a missing checkpoint is not reached
    with pytest.raises(ValueError, match="null_summary"):
        analyze(tmp_path / "m.pt", tmp_path / "t.h5", tmp_path / "A", null_summary=str(path))
    path.write_text(json.dumps(_null(0.1)))
    assert read_null_summary(str(path))["claim_checks"][0]["value"] == 0.1
    assert read_null_summary(None) is None
