"""profiles/slurm on a real one-node SLURM cluster (tests/slurm/local_cluster.sh).

The tiny .test/ config runs through the profile as shipped, with only its placeholders (account,
partitions) filled in, the way a user edits them. The first run gets a notebook that raises: that
SLURM job must be reported as failed while the rest of the chain finishes. The rerun with the
real notebook must then submit only the notebook job and finish.

Skipped when not root, when SLURM is neither installed nor installable with apt-get, or when
SOP_SKIP_SLURM=1.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SCRIPT = ROOT / "tests" / "slurm" / "local_cluster.sh"
PLACEHOLDERS = {
    "YOUR_ACCOUNT": "sopcosmo",
    "YOUR_PARTITION": "debug",
    "YOUR_GPU_PARTITION": "debug",
}

pytestmark = pytest.mark.slow


def _skip_reason():
    if os.environ.get("SOP_SKIP_SLURM") == "1":
        return "SOP_SKIP_SLURM=1"
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return "the local SLURM cluster needs root on Linux (it starts munged, slurmctld, slurmd)"
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        return "SLURM is not installed and apt-get is not available to install it"
    return None


@pytest.fixture(scope="module")
def cluster():
    """A running local cluster; yields the environment its clients need."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    state = Path(os.environ.get("SOP_SLURM_DIR", "/tmp/sop-slurm"))
    env = {**os.environ, "SOP_SLURM_DIR": str(state)}
    started = subprocess.run(
        ["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=600
    )
    if started.returncode == 3:  # the script's code for "cannot install or not root"
        pytest.skip(f"local SLURM unavailable: {started.stderr.strip()[-300:]}")
    assert started.returncode == 0, started.stdout + started.stderr
    ours = "already running" not in started.stderr
    env["SLURM_CONF"] = str(state / "slurm.conf")
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    yield env
    if ours:
        stopped = subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True)
        assert stopped.returncode == 0, stopped.stderr


def _profile(tmp_path):
    """profiles/slurm with the placeholders filled in; every other line as shipped."""
    text = (ROOT / "profiles" / "slurm" / "config.yaml").read_text()
    for placeholder, value in PLACEHOLDERS.items():
        assert placeholder in text
        text = text.replace(placeholder, value)
    assert "YOUR_" not in text
    text = text.replace("slurm-logdir: logs/slurm", f"slurm-logdir: {tmp_path / 'slurm_logs'}")
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text(text)
    return profile


def _snakemake(env, profile, results, logs, *extra):
    cmd = [
        str(BIN / "snakemake"), "--profile", str(profile), "--configfile", ".test/config.yaml",
        # A short first status check: jobs here take seconds, not hours.
        "--slurm-init-seconds-before-status-checks", "5",
        "--config", f"results={results}", f"logs={logs}", *extra,
    ]  # fmt: skip
    t0 = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    return result, time.perf_counter() - t0


def _failing_notebook(path):
    cell = {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
            "source": ["raise RuntimeError('made to fail by the SLURM test')"]}  # fmt: skip
    params = {**cell, "metadata": {"tags": ["parameters"]},
              "source": ["analysis_dir = baselines_dir = controls_dir = ''"]}  # fmt: skip
    nb = {"cells": [params, cell], "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}}}  # fmt: skip
    path.write_text(json.dumps(nb))


def _jobs_run(output):
    """Rule names in Snakemake's 'Job stats' table of a run's log."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1) for m in re.finditer(r"^(\w+)\s+\d+$", table, re.M)} - {"total"}


def test_failed_job_is_reported_and_rerun_finishes(cluster, tmp_path):
    profile = _profile(tmp_path)
    results, logs = tmp_path / "results", tmp_path / "logs"
    bad = tmp_path / "failing.ipynb"
    _failing_notebook(bad)

    first, t_first = _snakemake(cluster, profile, results, logs, f"report={{notebook: {bad}}}")
    out = first.stdout + first.stderr
    assert first.returncode != 0, out
    assert re.search(r"SLURM-job '\d+' failed, SLURM status is: 'FAILED'", out), out[-3000:]
    # keep-going (profiles/default): everything that does not need the notebook finished.
    for path in (
        "patches/test.h5",
        "train/sop/seed0/model.pt",
        "evaluate/cnn/seed0/test_metrics.json",
        "analyze/summary.json",
        "baselines/baselines.csv",
        "controls/controls.json",
        "theory/theory.csv",
    ):
        assert (results / path).is_file(), path
    assert not (results / "report" / "void_cluster_findings.ipynb").exists()

    second, t_second = _snakemake(cluster, profile, results, logs)
    out = second.stdout + second.stderr
    assert second.returncode == 0, out[-3000:]
    assert _jobs_run(out) == {"notebook", "all"}, out[-3000:]
    assert (results / "report" / "void_cluster_findings.ipynb").stat().st_size > 0
    summary = json.loads((results / "analyze" / "summary.json").read_text())
    assert summary["n_maps"] > 0 and set(summary["contributions"]) == {"Om", "s8"}
    # Jobs really went through SLURM: the plugin leaves one log per job in the logdir.
    assert len(list((tmp_path / "slurm_logs").rglob("*.log"))) >= 12
    print(f"\nSLURM runs: first (with the failure) {t_first:.0f} s, rerun {t_second:.0f} s")
