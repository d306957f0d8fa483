"""scripts/readme_numbers.py on a small fake results folder."""

import csv
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "readme_numbers", ROOT / "scripts" / "readme_numbers.py"
)
numbers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(numbers)

BLOCKS = "".join(
    f"<!-- numbers:{name}:start -->\nold {name}\n<!-- numbers:{name}:end -->\n"
    for name in numbers.BLOCKS
)


def _write_csv(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _json(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


@pytest.fixture
def results(tmp_path):
    res = tmp_path / "results"
    for model, mse in (("cnn", 0.010), ("sop", 0.020), ("stats", 0.030)):
        for seed, shift in ((0, 0.0), (1, 0.002)):
            r2 = {"Om": 0.5 + shift, "s8": None if model == "stats" else 0.25}
            _json(res / "evaluate" / model / f"seed{seed}" / "test_metrics.json",
                  {"mse": {"Om": mse + shift, "s8": 2 * mse}, "r2": r2})  # fmt: skip
    ci = {"void": [0.20, 0.30], "cluster": [0.05, 0.15], "other": [0.60, 0.70]}
    _json(res / "analyze" / "summary.json", {
        "contributions": {
            "Om": {"void": 0.25, "cluster": 0.10, "other": 0.65, "ci95": ci},
            "s8": {"void": 0.2444, "cluster": 0.12, "other": 0.6356, "ci95": ci},
        },
        "differences": {k: {"value": v, "ci95": [v - 0.01, v + 0.01]}
                        for k, v in (("void", 0.0056), ("cluster", -0.02), ("other", 0.0144))},
        "group_type_rates": {"void": 0.245, "cluster": 0.095, "other": 0.66},
        "n_maps": 12, "mean_active_groups": {"Om": 16.0, "s8": 15.94}, "n_groups": 16,
        "claims": [], "no_claim": "the models have no skill to interpret",
    })  # fmt: skip
    _write_csv(res / "baselines" / "baselines.csv", [
        {"method": "sop", "mse_mean": 0.05, "purity": 0.5, "insertion_auc": 0.3,
         "deletion_auc": 0.1},
        {"method": "rise", "mse_mean": 0.04, "purity": 0.25, "insertion_auc": 0.2,
         "deletion_auc": 0.15},
    ])  # fmt: skip
    theory = []
    for function, ds in (("monomial", (1, 2, 3)), ("binomial", (2, 3))):
        for d in ds:
            for kind in ("insertion", "deletion"):
                theory.append({
                    "function": function, "kind": kind, "d": d,
                    "per_feature_error": d / 10 + (kind == "deletion"),
                    "grouped_error": d / 100, "grouped_error_budget_selector": d / 200,
                    "grouped_error_uniform_selector": d / 1000,
                })  # fmt: skip
    _write_csv(res / "theory" / "theory.csv", theory)
    return res


def test_rewrites_every_block_from_the_results(results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# Title\n\nprose 0.123\n\n" + BLOCKS + "tail\n")
    assert numbers.main(["--results", str(results), "--file", str(readme)]) == 0
    text = readme.read_text()
    assert text.startswith("# Title\n\nprose 0.123\n\n") and text.endswith("tail\n")
    assert "old " not in text
    # Means over the two seeds; an undefined R² on one seed leaves the mean undefined.
    assert "| cnn | 2 | 0.011 | 0.020 | 0.501 | 0.250 |" in text
    assert "| stats | 2 | 0.031 | 0.060 | 0.501 | — |" in text
    assert (
        "| void | 0.245 | 0.250 [0.200, 0.300] | 0.244 [0.200, 0.300] | 0.006 [-0.004, 0.016] |"
        in text
    )
    assert "12 test maps; active groups of 16: Ωm 16.0, σ8 15.9." in text
    assert "No claim: the models have no skill to interpret." in text
    # Best MSE first.
    assert text.index("| rise | 0.040 | 0.250 |") < text.index("| sop | 0.050 | 0.500 |")
    # Insertion rows only, from the binomial's first d; the missing d = 1 binomial is not shown.
    assert "| 2 | 0.200 | 0.020 | 0.200 | 0.020 | 0.010 | 0.002 |" in text
    assert "| 3 | 0.300 | 0.030 | 0.300 | 0.030 | 0.015 | 0.003 |" in text
    assert "| 1 |" not in text


def test_check_passes_when_current_and_fails_when_stale(results, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(BLOCKS)
    args = ["--results", str(results), "--file", str(readme)]
    assert numbers.main([*args, "--check"]) == 1  # the hand-written blocks are stale
    assert readme.read_text() == BLOCKS  # --check changes nothing
    assert numbers.main(args) == 0
    assert numbers.main([*args, "--check"]) == 0
    summary = results / "analyze" / "summary.json"
    data = json.loads(summary.read_text())
    data["n_maps"] = 13  # a new run of the code
    summary.write_text(json.dumps(data))
    capsys.readouterr()
    assert numbers.main([*args, "--check"]) == 1
    assert "stale demo-analysis" in capsys.readouterr().out


def test_missing_results_exit_2_in_one_line_and_leave_the_file(results, tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(BLOCKS)
    (results / "baselines" / "baselines.csv").unlink()
    assert numbers.main(["--results", str(results), "--file", str(readme)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "baselines.csv not found" in err and "make demo" in err
    assert readme.read_text() == BLOCKS


def test_a_file_without_blocks_is_an_error(results, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("no markers\n")
    assert numbers.main(["--results", str(results), "--file", str(readme)]) == 2


def test_readme_blocks_are_all_known():
    names = {m["name"] for m in numbers.MARKER.finditer((ROOT / "README.md").read_text())}
    assert names == set(numbers.BLOCKS)


def test_theory_can_come_from_another_run(results, tmp_path):
    other = tmp_path / "theory12.csv"
    rows = list(csv.DictReader((results / "theory" / "theory.csv").open()))
    _write_csv(other, [{**r, "grouped_error": "0.777"} for r in rows])
    readme = tmp_path / "README.md"
    readme.write_text("<!-- numbers:theory:start -->\n<!-- numbers:theory:end -->\n")
    args = ["--results", str(results), "--file", str(readme), "--theory", str(other)]
    assert numbers.main(args) == 0
    assert "| 2 | 0.200 | 0.777 | 0.200 | 0.777 | 0.010 | 0.002 |" in readme.read_text()
