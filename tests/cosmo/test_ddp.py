"""Data-parallel training on the CPU with gloo: 2 ranks equal 1 rank at the same global batch,
and a 2-rank run killed mid-way resumes to the weights of one that never stopped.

The 2-rank jobs are 2 processes forked from this one with the variables torchrun sets (RANK,
LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), each running ``sop-cosmo train`` (a fork
skips a fresh import of torch per rank); one test runs the same job under ``torchrun`` itself,
as workflow/rules/train.smk launches it. One thread per rank.
"""

import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from sop_cosmo._threads import torch_threads
from sop_cosmo.cli import main
from sop_cosmo.cosmo.config import TrainConfig
from sop_cosmo.cosmo.dataset import Normalization, load_split
from sop_cosmo.cosmo.distributed import Ranks, local_batch, ranks_from_env, shard
from sop_cosmo.cosmo.models import load_model
from sop_cosmo.cosmo.stages.train import train
from tests.cosmo.test_data import make_patch_file

REPO = Path(__file__).resolve().parents[2]
TINY_CNN = {"widths": [8], "kernel": 3, "hidden": [16]}
TINY_SOP = {"attention_patch": 4, "n_groups": 4, "keep_fraction": 0.25, "n_heads": 1}
# 64 training patches in global batches of 8: 8 steps an epoch; an odd validation split, so
# the ranks' validation shards differ in size.
CNN = {"kind": "cnn", "epochs": 3, "batch_size": 8, "lr": 3e-3, "checkpoint_every": 5,
       "device": "cpu", "patience": None, "model_options": TINY_CNN}  # fmt: skip
# With competing groups (SOP's default) the generator's query bias adds the same score to every
# group of a cell, which the centring over the groups removes: its gradient is zero but for float
# rounding, which Adam scales up to full steps, differently for any other rounding. It changes no
# output (the predictions are compared instead).
NO_GRADIENT = {"sop.generator.query.bias"}
# SOP's first epoch trains the selector alone (the generator's lr is 0).
SOP = {**CNN, "kind": "sop", "epochs": 2, "selector_epochs": 1, "model_options": TINY_SOP}


def _argv(files, out, cfg, backbone=None):
    argv = ["train", "--train", str(files[0]), "--val", str(files[1]), "--out", str(out),
            "--quiet", "--model", cfg["kind"], "--epochs", str(cfg["epochs"]),
            "--batch-size", str(cfg["batch_size"]), "--lr", str(cfg["lr"]),
            "--checkpoint-every", str(cfg["checkpoint_every"]), "--device", "cpu",
            "--patience", "none", "--model-options", json.dumps(cfg["model_options"])]  # fmt: skip
    if cfg["kind"] == "sop":
        argv += ["--selector-epochs", str(cfg["selector_epochs"]), "--backbone", str(backbone)]
    return argv


def _rank(rank, argv, env, logs, slow):
    # One rank: torchrun's variables, its output and log records into logs/rank<r>.log.
    os.environ.update(env, RANK=str(rank), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    if slow:  # slow every step down, so that the job can be killed between checkpoints
        from torch.optim.optimizer import register_optimizer_step_post_hook

        register_optimizer_step_post_hook(lambda *a, **k: time.sleep(slow))
    path = Path(logs) / f"rank{rank}.log"
    with open(path, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        handler = logging.StreamHandler(f)
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        rc = main(argv)
    if rc:
        raise RuntimeError(f"rank {rank}: exit {rc}: {path.read_text()[-2000:]}")


def _start(argv, logs, *, slow=0.0, join=True):
    """2 ranks of ``sop-cosmo ARGV``, forked from this process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(port)}  # fmt: skip
    Path(logs).mkdir(parents=True, exist_ok=True)
    return mp.start_processes(_rank, args=(argv, env, str(logs), slow), nprocs=2, join=join,
                              start_method="fork")  # fmt: skip


def _weights(run):
    return torch.load(Path(run) / "last.pt", weights_only=True)


def _rows(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """1-rank runs in this process, and the same runs on 2 ranks."""
    d = tmp_path_factory.mktemp("ddp")
    files = (make_patch_file(d / "train.h5", 64, seed=0),
             make_patch_file(d / "val.h5", 31, seed=1, first_id=100))  # fmt: skip
    one = {"cnn": d / "cnn1", "sop": d / "sop1"}
    with torch_threads(1):
        backbone = train(*files, one["cnn"], TrainConfig(**CNN), progress=False)
        train(*files, one["sop"], TrainConfig(**SOP, backbone=str(backbone)), progress=False)
    two = {"cnn": d / "cnn2", "sop": d / "sop2"}
    _start(_argv(files, two["cnn"], CNN), d / "logs")
    _start(_argv(files, two["sop"], SOP, backbone), d / "logs")
    logs = [(d / "logs" / f"rank{r}.log").read_text() for r in range(2)]
    return {"files": files, "one": one, "two": two, "logs": logs}


@pytest.mark.parametrize("kind", ["cnn", "sop"])
def test_two_ranks_equal_one_rank_with_the_same_global_batch(runs, kind):
    cfg = CNN if kind == "cnn" else SOP
    a, b = _weights(runs["one"][kind]), _weights(runs["two"][kind])
    assert b["world_size"] == 2 and len(b["rank_rng_states"]) == 2
    assert a["step"] == b["step"] == 8 * cfg["epochs"]
    for key, tensor in a["model_state"].items():
        if key not in NO_GRADIENT:
            torch.testing.assert_close(b["model_state"][key], tensor, rtol=0, atol=1e-5, msg=key)
    # the same function: predictions on the validation maps
    x = load_split(runs["files"][1], kind, norm=Normalization.from_dict(a["norm"])).x[:]
    with torch.no_grad():
        pa, pb = (load_model(run / "last.pt", "cpu")[0].eval()(x) for run in
                  (runs["one"][kind], runs["two"][kind]))  # fmt: skip
    torch.testing.assert_close(pb, pa, rtol=0, atol=1e-5)
    # the epoch losses are reduced over both ranks: the same numbers as one process
    for r1, r2 in zip(_rows(runs["one"][kind]), _rows(runs["two"][kind]), strict=True):
        assert r2["train_loss"] == pytest.approx(r1["train_loss"], rel=1e-5)
        assert r2["val_loss"] == pytest.approx(r1["val_loss"], rel=1e-5)
        assert r2["val_mse"] == pytest.approx(r1["val_mse"], rel=1e-5)
        assert r2["best"] == r1["best"]


def test_the_equality_is_not_trivial(runs, tmp_path):
    # one process on the per-rank batch (4) ends far from the 2-rank run on the global batch
    with torch_threads(1):
        train(*runs["files"], tmp_path, TrainConfig(**{**CNN, "batch_size": 4}), progress=False)
    a, b = _weights(tmp_path)["model_state"], _weights(runs["two"]["cnn"])["model_state"]
    assert max(float((a[k] - b[k]).abs().max()) for k in a) > 1e-3


def test_rank_zero_alone_logs(runs):
    main_log, other = runs["logs"]
    assert main_log.count("train cnn -> ") == 1 and main_log.count("train sop -> ") == 1
    assert main_log.count("× 2 ranks") == 2
    assert main_log.count(f"epoch {CNN['epochs']}/{CNN['epochs']} step") == 1
    assert "train cnn -> " not in other and " epoch " not in other


def test_killed_two_rank_run_resumes_to_the_uninterrupted_weights(runs, tmp_path):
    out = tmp_path / "killed"
    argv = _argv(runs["files"], out, CNN)
    job = _start(argv, tmp_path / "logs", slow=0.05, join=False)
    deadline = time.monotonic() + 60
    while not (out / "last.pt").exists():
        if not all(p.is_alive() for p in job.processes) or time.monotonic() > deadline:
            for p in job.processes:
                p.kill()
            pytest.fail(f"no checkpoint: {(tmp_path / 'logs' / 'rank0.log').read_text()}")
        time.sleep(0.005)
    for p in job.processes:  # SIGKILL, every rank, as a cluster's scancel would
        os.kill(p.pid, signal.SIGKILL)
    for p in job.processes:
        p.join()
        assert p.exitcode == -signal.SIGKILL
    step = _weights(out)["step"]
    assert 0 < step < 8 * CNN["epochs"], "the job must be killed mid-run"

    # the same checkpoint resumed by one process: the same global batches, so the same weights
    shutil.copytree(out, tmp_path / "one")
    with torch_threads(1):
        train(*runs["files"], tmp_path / "one", TrainConfig(**CNN), progress=False)

    _start(argv, tmp_path / "resumed")
    log = (tmp_path / "resumed" / "rank0.log").read_text()
    assert f"resuming {out / 'last.pt'} from step {step}" in log
    ref, resumed = _weights(runs["two"]["cnn"]), _weights(out)
    for key, tensor in ref["model_state"].items():
        assert torch.equal(resumed["model_state"][key], tensor), key
    for key, tensor in _weights(tmp_path / "one")["model_state"].items():
        torch.testing.assert_close(tensor, ref["model_state"][key], rtol=0, atol=1e-5, msg=key)
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(_rows(out)) == drop(_rows(runs["two"]["cnn"]))
    assert not list(out.glob(".*"))


@pytest.mark.slow  # three imports of torch: torchrun's and one per rank
def test_torchrun_runs_the_cli_unchanged(runs, tmp_path):
    # as workflow/rules/train.smk launches it: torchrun starts the console script on 2 ranks
    script = Path(sys.executable).with_name("sop-cosmo")
    if not script.is_file():
        pytest.skip(f"{script}: the sop-cosmo console script is not installed")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
           "2", "--no-python", str(script), *_argv(runs["files"], tmp_path, CNN)]  # fmt: skip
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "× 2 ranks" in done.stderr
    ref, got = _weights(runs["two"]["cnn"]), _weights(tmp_path)
    for key, tensor in ref["model_state"].items():
        assert torch.equal(got["model_state"][key], tensor), key


def test_ranks_from_the_environment_and_the_batch_split():
    assert ranks_from_env({}) == Ranks(0, 1, 0)
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    assert ranks_from_env(env) == Ranks(1, 2, 1) and not ranks_from_env(env).main
    with pytest.raises(ValueError, match="RANK=2, WORLD_SIZE=2"):
        ranks_from_env({**env, "RANK": "2"})
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        ranks_from_env({**env, "WORLD_SIZE": "two"})
    assert local_batch(32, 100, Ranks(0, 4, 0)) == 8 and local_batch(30, 10, Ranks()) == 30
    with pytest.raises(ValueError, match="multiple of 4"):
        local_batch(30, 100, Ranks(0, 4, 0))
    with pytest.raises(ValueError, match="more than the 10 training patches"):
        local_batch(32, 10, Ranks(0, 2, 0))
    parts = [shard(31, Ranks(r, 2, r)) for r in range(2)]
    assert [len(p) for p in parts] == [15, 16] and parts[0].stop == parts[1].start
