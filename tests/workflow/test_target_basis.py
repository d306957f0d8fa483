"""The workflow's target basis (preprocess.params): a config chooses it, the default is kept,
and an unknown name stops the plan on simulated data with one line naming the allowed ones."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sop_cosmo.workflow_config import section_defaults, stage_flags

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.slow  # a dry run each, 5-10 s on a shared 2-core machine


def _dry_run(tmp_path, params):
    config = tmp_path / "basis.yaml"
    config.write_text(
        f"results: {tmp_path / 'results'}\nlogs: {tmp_path / 'logs'}\n"
        + f"preprocess:\n  params: {params}\n"
    )
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(BIN / "snakemake"), "--cores", "1", "--dry-run", "-p", "--configfile", str(config)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip


def test_a_config_chooses_the_s8_basis_and_the_default_stays(tmp_path):
    plan = _dry_run(tmp_path, "[S8, Om]")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    commands = re.findall(r"sop-cosmo preprocess .*", plan.stdout)
    assert commands and all("--params S8,Om " in c for c in commands)
    # a config without the key keeps the package default (the demo's Om, s8)
    assert section_defaults("preprocess")["params"] == ["Om", "s8"]
    assert stage_flags("preprocess", {"params": ["Om", "s8"]}) == "--params Om,s8"


def test_an_unknown_target_stops_the_plan(tmp_path):
    plan = _dry_run(tmp_path, "[S9, Om]")
    assert plan.returncode != 0
    out = plan.stdout + plan.stderr
    assert "preprocess.params: unknown 'S9'; allowed: " in out and "rule simulate" not in out
