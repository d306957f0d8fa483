"""train.gpus: the CNN and SOP training jobs ask for that many GPUs and run under torchrun."""

import re

import pytest

from tests.workflow.test_snakemake import snakemake

TORCHRUN = "OMP_NUM_THREADS=2 torchrun --standalone --nproc-per-node 4 --no-python sop-cosmo train"


def _train_section(tmp_path, train):
    path = tmp_path / "train.yaml"
    path.write_text(f"train: {train}\n")
    return str(path)


def _plan(tmp_path, train):
    """{rule: (resources, shell command)} of the first job of each rule in a dry run."""
    result = snakemake("--cores", "2", "--dry-run", "--printshellcmds",
                       "--configfile", _train_section(tmp_path, train), "--config",
                       f"results={tmp_path / 'results'}", f"logs={tmp_path / 'logs'}")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {}
    for block in re.split(r"\n(?=rule \w+:)", result.stdout):
        rule = re.match(r"rule (\w+):", block)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        if rule and res and rule.group(1) not in jobs:
            resources = dict(kv.split("=", 1) for kv in res.group(1).split(", "))
            jobs[rule.group(1)] = (resources, " ".join(block[res.end() :].split()))
    return jobs


def test_four_gpus_run_cnn_and_sop_under_torchrun(tmp_path):
    jobs = _plan(tmp_path, "{gpus: 4, device: cuda}")
    for rule in ("train_cnn", "train_sop"):
        resources, shell = jobs[rule]
        assert f"{TORCHRUN} --train" in shell, rule
        assert resources["gpu"] == "4" and resources["mem_mb"] == "32000", rule
    resources, shell = jobs["train_stats"]
    assert "torchrun" not in shell and resources.get("gpu", "0") == "0"
    assert jobs["analyze"][0]["gpu"] == "1"


def test_the_cpu_asks_for_no_gpu_whatever_train_gpus_says(tmp_path):
    jobs = _plan(tmp_path, "{gpus: 4, device: cpu}")
    assert not any("torchrun" in shell for _, shell in jobs.values())
    assert all(res.get("gpu", "0") == "0" for res, _ in jobs.values())


@pytest.mark.parametrize(("gpus", "message"), [(3, "do not split the training batch of 32"),
                                               (0, "gpus")])  # fmt: skip
def test_a_gpu_count_that_cannot_work_stops_the_plan(tmp_path, gpus, message):
    result = snakemake("--cores", "1", "--dry-run", "--configfile",
                       _train_section(tmp_path, f"{{gpus: {gpus}}}"), "--config",
                       f"results={tmp_path}")  # fmt: skip
    assert result.returncode != 0 and message in result.stdout + result.stderr
