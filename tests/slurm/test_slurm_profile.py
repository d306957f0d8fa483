"""profiles/slurm on a real one-node SLURM cluster (tests/slurm/local_cluster.sh).

The tiny .test/ config runs through the profile as shipped, with only its placeholders (account,
partitions) filled in, the way a user edits them. The first run gets a notebook that raises: that
SLURM job must be reported as failed while the rest of the chain finishes. The rerun with the
real notebook must then submit only the notebook job and finish.

It needs root on Linux. Where SLURM (slurmctld, slurmd, sbatch, munged) is not installed, the
test installs Debian's packages with apt-get only when SOP_SLURM_INSTALL=1 (what .ci/run sets);
otherwise it skips, saying so. SOP_SKIP_SLURM=1 skips it always.
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

# What local_cluster.sh needs on PATH; it installs them (apt-get) only when SOP_SLURM_INSTALL=1.
SLURM_COMMANDS = ("slurmctld", "slurmd", "sbatch", "munged")
HOW_TO_RUN = (
    "SOP_SLURM_INSTALL=1 lets this test install slurm-wlm, munge and slurm-client system-wide"
    " with apt-get (as root; .ci/run sets it), or install them yourself"
)


def _skip_reason(env=os.environ, which=shutil.which, is_root=None):
    """Why the SLURM test cannot run here, or None when it can."""
    if env.get("SOP_SKIP_SLURM") == "1":
        return "SOP_SKIP_SLURM=1"
    if is_root is None:
        is_root = sys.platform.startswith("linux") and os.geteuid() == 0
    if not is_root:
        return "the local SLURM cluster needs root on Linux (it starts munged, slurmctld, slurmd)"
    missing = [name for name in SLURM_COMMANDS if which(name) is None]
    if not missing:
        return None
    if env.get("SOP_SLURM_INSTALL") != "1":
        return f"SLURM is not installed ({', '.join(missing)} not found): {HOW_TO_RUN}"
    if which("apt-get") is None:
        return "SOP_SLURM_INSTALL=1 but apt-get is not available: install SLURM and munge by hand"
    return None


@pytest.mark.parametrize(
    ("env", "found", "root", "expected"),
    [
        ({"SOP_SKIP_SLURM": "1", "SOP_SLURM_INSTALL": "1"}, "all", True, "SOP_SKIP_SLURM=1"),
        ({}, "all", False, "needs root"),
        ({}, "all", True, None),  # installed: runs without asking
        ({}, "apt-get", True, "SOP_SLURM_INSTALL=1 lets"),  # never installs unasked
        ({"SOP_SLURM_INSTALL": "0"}, "apt-get", True, "SOP_SLURM_INSTALL=1 lets"),
        ({"SOP_SLURM_INSTALL": "1"}, "apt-get", True, None),  # asked: the script installs
        ({"SOP_SLURM_INSTALL": "1"}, "none", True, "apt-get is not available"),
    ],
)
def test_skip_reason(env, found, root, expected):
    def which(name):
        present = found == "all" or (found == "apt-get" and name == "apt-get")
        return f"/usr/bin/{name}" if present else None

    reason = _skip_reason(env, which, root)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason, reason


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
    if started.returncode == 3:  # the script's code for "not installed, not root, or no apt-get"
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


@pytest.mark.slow
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
    assert _jobs_run(out) == {"notebook", "notebook_html", "all"}, out[-3000:]
    assert (results / "report" / "void_cluster_findings.ipynb").stat().st_size > 0
    assert (results / "report" / "void_cluster_findings.html").stat().st_size > 0
    summary = json.loads((results / "analyze" / "summary.json").read_text())
    assert summary["n_maps"] > 0 and set(summary["contributions"]) == {"Om", "s8"}
    # Jobs really went through SLURM: the plugin leaves one log per job in the logdir.
    assert len(list((tmp_path / "slurm_logs").rglob("*.log"))) >= 12
    print(f"\nSLURM runs: first (with the failure) {t_first:.0f} s, rerun {t_second:.0f} s")
