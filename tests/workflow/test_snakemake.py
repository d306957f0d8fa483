"""The Snakemake workflow: lint, format, a tiny real run, and config validation."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv that runs the tests also provides the CLI


def snakemake(*args, cwd=ROOT):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "snakemake"), *args], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr


def test_snakefmt_is_clean():
    result = subprocess.run(
        [str(BIN / "snakefmt"), "--check", "Snakefile", "workflow"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_tiny_config_runs_end_to_end(tmp_path):
    results, logs = tmp_path / "results", tmp_path / "logs"
    result = snakemake(
        "--cores", "1", "--configfile", ".test/config.yaml",
        "--config", f"results={results}", f"logs={logs}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    table = (results / "theory" / "theory.csv").read_text().splitlines()
    assert table[0].startswith("function,kind,d,per_feature_error")
    assert len(table) == 1 + 2 * (3 + 2)  # header + monomial d=1..3, binomial d=2..3, 2 kinds
    assert (logs / "theory" / "theory.log").exists()
    for model in ("cnn", "sop", "stats"):
        metrics = json.loads((results / "evaluate" / model / "test_metrics.json").read_text())
        assert set(metrics["mse"]) == {"Om", "s8"} and metrics["n"] > 0
        assert (logs / "train" / f"{model}.log").exists()
    for split in ("train", "val", "test"):
        assert (results / "patches" / f"{split}.h5").exists()


def test_bad_config_value_stops_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("theory:\n  max_d: 40\n")
    result = snakemake("--cores", "1", "--configfile", str(bad), "--dry-run")
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert "max_d" in out and "40" in out


def test_real_data_root_must_exist(tmp_path):
    bad = tmp_path / "real.yaml"
    bad.write_text(f"data:\n  source: cosmogrid\n  root: {tmp_path / 'nowhere'}\n")
    result = snakemake("--cores", "1", "--configfile", str(bad), "--dry-run")
    assert result.returncode != 0
    assert "data.root" in result.stdout + result.stderr


def test_unknown_config_key_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("theory:\n  max_dd: 4\n")
    result = snakemake("--cores", "1", "--configfile", str(bad), "--dry-run")
    assert result.returncode != 0
    assert "max_dd" in result.stdout + result.stderr
