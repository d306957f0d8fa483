import csv

import numpy as np
import pytest

from sop_cosmo.cli import main
from sop_cosmo.theory import TheoryConfig, binomial, grouped_error, monomial, run_theory, train_sop


def test_uniform_selector_sop_finds_the_binomial_terms_and_zero_error():
    poly = binomial(3)  # terms {0,1} and {1,2}
    fit = train_sop(poly, TheoryConfig(n_groups=4, steps=600, selector="uniform"))
    assert fit.active_groups() == {(0, 1), (1, 2)}
    for kind in ("insertion", "deletion"):
        assert grouped_error(poly, fit.groups, fit.alpha, kind=kind).worst < 0.05
    assert fit.test_mse < 1e-3


def test_budget_selector_keeps_as_many_groups_as_the_polynomial_has_terms():
    fit = train_sop(binomial(4), TheoryConfig(n_groups=4, steps=100, selector="budget"))
    # at most the budget (a kept group can tie with, or be outscored to 0 by, the other)
    assert 1 <= np.count_nonzero(fit.alpha) <= 2, fit.alpha
    # the monomial's groups are all the same mask (k = 1): tied scores, every group weighted
    fit = train_sop(monomial(3), TheoryConfig(n_groups=4, steps=100, selector="budget"))
    assert np.count_nonzero(fit.alpha) == 4 and np.allclose(fit.alpha, fit.alpha[0])


def test_contributions_sum_to_the_prediction_at_all_ones():
    fit = train_sop(monomial(3), TheoryConfig(n_groups=3, steps=300))
    # The monomial keeps every feature (k = 1), so the prediction at x = 1 is Σα ≈ p(1) = 1.
    assert fit.groups.all()
    assert abs(fit.alpha.sum() - 1.0) < 0.05


def test_training_is_reproducible_on_cpu():
    a = train_sop(binomial(4), TheoryConfig(steps=50, seed=3))
    b = train_sop(binomial(4), TheoryConfig(steps=50, seed=3))
    np.testing.assert_array_equal(a.groups, b.groups)
    np.testing.assert_array_equal(a.alpha, b.alpha)


def test_run_theory_writes_the_table_and_plot(tmp_path):
    rows = run_theory(3, tmp_path, TheoryConfig(steps=100), progress=False)
    # monomial d=1..3 and binomial d=2..3, each for insertion and deletion
    assert len(rows) == 2 * (3 + 2)
    with open(tmp_path / "theory.csv") as fh:
        table = list(csv.DictReader(fh))
    assert {"d", "per_feature_error", "grouped_error", "grouped_error_budget_selector"} <= set(
        table[0]
    )
    mono_ins = {int(r["d"]): float(r["per_feature_error"]) for r in table
                if r["function"] == "monomial" and r["kind"] == "insertion"}  # fmt: skip
    assert mono_ins == pytest.approx({1: 0.0, 2: 1 / 3, 3: 2 / 5}, abs=1e-6)
    assert all(float(r["oracle_grouped_error"]) < 1e-9 for r in table)
    png = (tmp_path / "theory.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_cli_theory(tmp_path, capsys):
    assert main(["theory", "--max-d", "2", "--out", str(tmp_path), "--steps", "20", "--quiet"]) == 0
    assert (tmp_path / "theory.csv").exists()
    assert "per-feature" in capsys.readouterr().out


def test_cli_rejects_a_too_large_d(tmp_path, capsys):
    assert main(["theory", "--max-d", "30", "--out", str(tmp_path), "--quiet"]) == 2
    assert "max_d" in capsys.readouterr().err
    assert not (tmp_path / "theory.csv").exists()


def test_bad_selector_is_named():
    with pytest.raises(ValueError, match="selector"):
        train_sop(binomial(3), TheoryConfig(selector="greedy"))


def test_restarts_keep_the_fit_with_the_lowest_validation_error():
    one = train_sop(binomial(5), TheoryConfig(steps=150, restarts=1, selector="uniform"))
    three = train_sop(binomial(5), TheoryConfig(steps=150, restarts=3, selector="uniform"))
    # Restart 0 is the single fit, so the best of three can only match or improve on it.
    assert three.test_mse <= one.test_mse * 1.5 + 1e-4
    with pytest.raises(ValueError, match="restarts"):
        train_sop(binomial(3), TheoryConfig(restarts=0))
