"""A CosmoGrid-scale plan: a metainfo without maps (``sop-cosmo simulate --metainfo-only``) and
``snakemake -n --profile profiles/slurm`` with the preprocessing scattered over chunks.

The plan does not read maps, so its size depends on the chunks, not on the grid: the test uses
64 cosmologies × 7 perms (CosmoGridV1 has 2,500 × 7; docs/pipeline.md gives the full-size
timings). It prints how long the dry run took and asserts no time.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import h5py
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHUNKS = 16


def _run(*args, cwd=ROOT):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)


def _config(tmp_path, root, chunks):
    config = yaml.safe_load((ROOT / "config" / "cosmogrid.yaml").read_text())
    config["data"]["root"] = str(root)
    config["preprocess"]["chunks"] = chunks
    config.update(results=str(tmp_path / "results"), logs=str(tmp_path / "logs"))
    path = tmp_path / f"plan_{chunks}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_slurm_dry_run_plans_one_job_per_chunk(tmp_path):
    root = tmp_path / "cosmogrid"
    made = _run(str(BIN / "sop-cosmo"), "simulate", "--out", str(root), "--n-cosmologies", "64",
                "--n-perms", "7", "--metainfo-only", "--quiet")  # fmt: skip
    assert made.returncode == 0, made.stderr
    meta = root / "CosmoGrid" / "CosmoGridV1_metainfo.h5"
    with h5py.File(meta) as f:
        assert len(f["parameters/grid"]) == 64 and f.attrs["metainfo_only"]
    assert not (root / "CosmoGrid" / "stage3_forecast").exists()  # no maps

    t0 = time.perf_counter()
    plan = _run(str(BIN / "snakemake"), "-n", "--profile", "profiles/slurm",
                "--configfile", str(_config(tmp_path, root, CHUNKS)))  # fmt: skip
    seconds = time.perf_counter() - t0
    print(f"snakemake -n --profile profiles/slurm, {CHUNKS} chunks: {seconds:.1f} s")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", plan.stdout, flags=re.M))
    assert counts["preprocess_chunk"] == str(CHUNKS) and counts["preprocess"] == "1"
    assert "simulate" not in counts and counts["train_cnn"] == "3"  # one per train.seeds
    # the demo config runs the permuted-label null: its chunks are the same cut, a second time
    assert counts.get("preprocess_chunk_null_permuted", str(CHUNKS)) == str(CHUNKS)
    lines = [ln for ln in plan.stdout.splitlines() if "--permute-labels" not in ln]
    chunk_jobs = re.findall(r"sop-cosmo preprocess .* --chunks 16 --chunk (\d+) ", "\n".join(lines))
    assert sorted(map(int, chunk_jobs)) == list(range(CHUNKS))
    gather = re.search(r"sop-cosmo gather --out \S+ (.*) 2>&1 \| tee", "\n".join(lines))
    assert gather and len(gather.group(1).split()) == CHUNKS


def test_more_chunks_than_cosmologies_stop_the_plan(tmp_path):
    root = tmp_path / "cosmogrid"
    made = _run(str(BIN / "sop-cosmo"), "simulate", "--out", str(root), "--n-cosmologies", "5",
                "--metainfo-only", "--quiet")  # fmt: skip
    assert made.returncode == 0, made.stderr
    plan = _run(str(BIN / "snakemake"), "-n", "--cores", "1",
                "--configfile", str(_config(tmp_path, root, 6)))  # fmt: skip
    assert plan.returncode != 0
    assert (
        "preprocess.chunks: 6 chunks for 5 cosmologies; use at most 5" in plan.stdout + plan.stderr
    )
