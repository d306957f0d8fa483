"""sop-cosmo compare: skill per labelled run and model, and the analyses' effects side by side
(the workflow's skill_by_level and gaussian_vs_lognormal)."""

from __future__ import annotations

import csv
import json

import pytest

from sop_cosmo.cli import main
from sop_cosmo.cosmo.stages.compare import compare_runs, describe_comparison


def _metrics(path, r2_om, mse_om):
    m = {"mse": {"Om": mse_om, "s8": 0.01}, "mse_constant": {"Om": 0.02, "s8": 0.04},
         "r2": {"Om": r2_om, "s8": 0.7}, "n": 40, "mse_mean": 0.0}  # fmt: skip
    path.write_text(json.dumps(m))
    return path


def _summary(path, void_diff, ci, claimed):
    checks = [
        {"kind": "difference", "type": "void", "parameter": "Om", "compared_to": "s8",
         "value": void_diff, "ci95": ci, "text": "Ωm relies more on void groups"},
        {"kind": "preference", "type": "cluster", "parameter": "s8", "compared_to": "base_rate",
         "value": 0.001, "ci95": [-0.01, 0.01], "text": "σ8 gives cluster groups more weight"},
    ]  # fmt: skip
    s = {"claim_checks": checks, "claims": checks[:1] if claimed else [],
         "no_claim": None if claimed else "the CI includes 0", "seeds": [0],
         "skill": {"r2": {"Om": 0.6, "s8": 0.8}, "passed": True},
         "difference_params": ["Om", "s8"]}  # fmt: skip
    path.write_text(json.dumps(s))
    return path


@pytest.fixture
def runs(tmp_path):
    metrics = {
        "lognormal": {"cnn": _metrics(tmp_path / "l_cnn.json", 0.6, 0.008),
                      "sop": _metrics(tmp_path / "l_sop.json", 0.5, 0.010)},
        "gaussian": {"cnn": _metrics(tmp_path / "g_cnn.json", 0.2, 0.016),
                     "sop": _metrics(tmp_path / "g_sop.json", None, 0.030)},
    }  # fmt: skip
    summaries = {"lognormal": _summary(tmp_path / "l.json", 0.10, [0.04, 0.16], True),
                 "gaussian": _summary(tmp_path / "g.json", 0.03, [-0.02, 0.08], False)}  # fmt: skip
    return metrics, summaries


def test_skill_table_figure_and_effects(runs, tmp_path):
    metrics, summaries = runs
    result = compare_runs(metrics, tmp_path / "out", "gaussian_vs_lognormal", summaries)
    rows = list(csv.DictReader((tmp_path / "out" / "gaussian_vs_lognormal.csv").open()))
    assert len(rows) == 2 * 2 * 2  # labels × models × parameters
    by = {(r["label"], r["model"], r["parameter"]): r for r in rows}
    assert float(by["gaussian", "cnn", "Om"]["mse_over_constant"]) == pytest.approx(0.8)
    assert by["gaussian", "sop", "Om"]["r2"] == ""  # undefined R² stays empty, not 0
    assert (tmp_path / "out" / "gaussian_vs_lognormal.png").stat().st_size > 0
    assert json.loads((tmp_path / "out" / "gaussian_vs_lognormal.json").read_text()) == result
    void, cluster = result["effects"]
    assert void["candidate"] == "void: Ωm − σ8" and void["by_label"]["lognormal"]["claimed"]
    gauss = void["by_label"]["gaussian"]
    assert gauss["retained"] == pytest.approx(0.3) and not gauss["claimed"]
    # no effect to keep where the reference's own CI includes 0
    assert cluster["by_label"]["gaussian"]["retained"] is None
    assert result["analyses"]["lognormal"]["claims"] == ["Ωm relies more on void groups"]
    text = describe_comparison(result)
    assert "- sop Ωm: lognormal 0.50, gaussian undefined" in text
    assert "gaussian +0.030 [-0.020, +0.080], keeps 30%" in text
    assert "lognormal +0.100 [+0.040, +0.160] claimed" in text


def test_skill_only_without_summaries(runs, tmp_path):
    metrics, _ = runs
    result = compare_runs(metrics, tmp_path, "skill_by_level")
    assert "effects" not in result and result["reference"] == "lognormal"
    assert "Effects" not in describe_comparison(result)


def test_cli_writes_the_files_and_refuses_a_missing_one(runs, tmp_path, capsys):
    metrics, _ = runs
    argv = ["compare", "--out", str(tmp_path / "cli"), "--name", "skill_by_level"]
    for name, models in metrics.items():
        for model, path in models.items():
            argv += ["--metrics", name, model, str(path)]
    assert main(argv) == 0
    assert (tmp_path / "cli" / "skill_by_level.csv").is_file()
    assert main([*argv[:5], "--metrics", "none", "cnn", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert "nope.json: not found; give the test_metrics.json of `sop-cosmo evaluate`" in err
    assert len(err.strip().splitlines()) == 1


def test_labels_must_have_the_same_models_and_summaries(runs, tmp_path):
    metrics, summaries = runs
    with pytest.raises(ValueError, match="different models"):
        compare_runs({**metrics, "desy3": {"cnn": metrics["gaussian"]["cnn"]}}, tmp_path, "x")
    with pytest.raises(ValueError, match="one summary per label"):
        compare_runs(metrics, tmp_path, "x", {"lognormal": summaries["lognormal"]})
