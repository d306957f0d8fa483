"""The training engine: runs, checkpoints, bit-exact resume after SIGKILL, evaluation."""

import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from sop_cosmo.cosmo import runtime as runtime_mod
from sop_cosmo.cosmo.config import TrainConfig
from sop_cosmo.cosmo.dataset import Normalization, load_split
from sop_cosmo.cosmo.models import build_model, load_model
from sop_cosmo.cosmo.optim import WarmupCosine
from sop_cosmo.cosmo.runtime import runtime_settings, select_device
from sop_cosmo.cosmo.stages import train as train_mod
from sop_cosmo.cosmo.stages.evaluate import evaluate
from sop_cosmo.cosmo.stages.train import train
from tests.cosmo.test_data import make_patch_file

REPO = Path(__file__).resolve().parents[2]
TINY_CNN = {"widths": [8], "kernel": 3, "hidden": [16]}
TINY_SOP = {"attention_patch": 4, "n_groups": 4, "keep_fraction": 0.25, "n_heads": 1}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("patches")
    return (
        make_patch_file(d / "train.h5", 64, seed=0),
        make_patch_file(d / "val.h5", 32, seed=1, first_id=100),
    )


def _config(kind="cnn", **kw):
    base = {
        "kind": kind,
        "epochs": 3,
        "batch_size": 8,
        "lr": 3e-3,
        "checkpoint_every": 5,
        "device": "cpu",
        "model_options": TINY_CNN if kind == "cnn" else {},
        "stats_options": {"ps_bins": 3} if kind == "stats" else {},
    }
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def cnn_run(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn_run")
    train(*files, out, _config(epochs=6, patience=None), progress=False)
    return out


def _rows(run):
    return [json.loads(line) for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def test_training_writes_checkpoints_and_metrics(cnn_run):
    rows = _rows(cnn_run)
    assert [r["epoch"] for r in rows] == list(range(1, 7))
    assert [r["step"] for r in rows] == [8 * e for e in range(1, 7)]
    for r in rows:
        assert set(r) >= {"epoch", "step", "train_loss", "val_loss", "val_mse", "lr", "seconds"}
        assert set(r["val_mse"]) == {"Om", "s8"}
        assert all(math.isfinite(v) for v in (r["train_loss"], r["val_loss"], r["lr"]))
    # decreasing-ish: the tiny CNN learns something from κ's std
    assert rows[-1]["train_loss"] < 0.95 * rows[0]["train_loss"]
    assert min(r["val_loss"] for r in rows) < rows[0]["val_loss"]
    # warm-up then cosine decay down to lr · min_lr_ratio at the last step
    assert rows[-1]["lr"] == pytest.approx(3e-3 * 0.01)

    best = torch.load(cnn_run / "model.pt", weights_only=True)
    assert best["val_loss"] == pytest.approx(min(r["val_loss"] for r in rows))
    assert best["param_names"] == ["Om", "s8"] and best["kind"] == "cnn"
    assert best["model_args"]["options"]["widths"] == [8]
    assert Normalization.from_dict(best["norm"]).param_names == ["Om", "s8"]
    assert best["data_attrs"]["patch_size"] == 16 and best["version"]
    assert best["config"] == _config(epochs=6, patience=None).to_dict()

    last = torch.load(cnn_run / "last.pt", weights_only=True)
    assert last["step"] == 48 and last["progress"]["finished"]
    assert {"optimizer_state", "scheduler_state", "rng_state", "fingerprint"} <= set(last)
    assert not list(cnn_run.glob(".*"))  # no temp files left behind


def test_finished_run_is_not_retrained_and_runtime_keys_may_change(files, cnn_run, caplog):
    before = (cnn_run / "model.pt").stat().st_mtime_ns
    cfg = _config(epochs=6, patience=None, num_workers=1, amp=False, device="auto")
    with caplog.at_level(logging.INFO, logger="sop_cosmo.cosmo.stages.train"):
        assert train(*files, cnn_run, cfg, progress=False) == cnn_run / "model.pt"
    assert "already finished" in caplog.text
    assert (cnn_run / "model.pt").stat().st_mtime_ns == before


def test_incompatible_checkpoint_is_refused_naming_the_keys(files, cnn_run):
    cfg = _config(epochs=6, patience=None, lr=1e-2, batch_size=16)
    with pytest.raises(ValueError, match="cannot resume") as err:
        train(*files, cnn_run, cfg, progress=False)
    msg = str(err.value)
    assert "config.lr: 0.003 -> 0.01" in msg and "config.batch_size: 8 -> 16" in msg
    assert "config.seed" not in msg
    assert f"Delete {cnn_run / 'last.pt'}" in msg and "another --out" in msg


def test_start_log_has_config_and_git_sha(files, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="sop_cosmo.cosmo.stages.train"):
        train(*files, tmp_path, _config(epochs=1), progress=False)
    start = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("train "))
    assert '"lr": 0.003' in start and "git " in start


_CHILD = """
import json, sys, time, torch
torch.set_num_threads({threads})
from torch.optim.optimizer import register_optimizer_step_post_hook
# slow every step down, so the parent can kill the run between checkpoints
register_optimizer_step_post_hook(lambda *a, **k: time.sleep(0.04))
from sop_cosmo.cosmo.config import TrainConfig
from sop_cosmo.cosmo.stages.train import train
train({train!r}, {val!r}, {out!r}, TrainConfig.from_dict(json.loads({cfg!r})), progress=False)
"""


def _kill_after_first_checkpoint(files, out, cfg):
    code = _CHILD.format(
        threads=torch.get_num_threads(),
        train=str(files[0]),
        val=str(files[1]),
        out=str(out),
        cfg=json.dumps(cfg.to_dict()),
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (out / "last.pt").exists():
        if proc.poll() is not None:
            pytest.fail(f"training child exited early:\n{proc.stderr.read().decode()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint within 60 s")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    return torch.load(out / "last.pt", weights_only=True)["step"]


@pytest.mark.parametrize("kind", ["cnn", "stats"])  # stats has dropout: RNG state matters
def test_resume_after_sigkill_is_bit_identical(files, tmp_path, kind, caplog):
    cfg = _config(kind)
    total = 3 * 64 // 8
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    train(*files, ref, cfg, progress=False)

    step = _kill_after_first_checkpoint(files, killed, cfg)
    assert 0 < step < total, "the child must be killed mid-run"
    with caplog.at_level(logging.INFO, logger="sop_cosmo.cosmo.stages.train"):
        train(*files, killed, cfg, progress=False)
    assert f"resuming {killed / 'last.pt'} from step {step}" in caplog.text

    for name in ("model.pt", "last.pt"):
        a = torch.load(ref / name, weights_only=True)
        b = torch.load(killed / name, weights_only=True)
        assert a["model_state"].keys() == b["model_state"].keys()
        for key, tensor in a["model_state"].items():
            assert torch.equal(tensor, b["model_state"][key]), f"{name}: {key} differs"
    a, b = (torch.load(d / "last.pt", weights_only=True)["optimizer_state"] for d in (ref, killed))
    for pid, st in a["state"].items():
        assert all(torch.equal(v, b["state"][pid][k]) for k, v in st.items())
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(_rows(ref)) == drop(_rows(killed))
    assert not list(killed.glob(".*"))  # the killed child's temp file was cleaned up


def test_early_stopping_ends_the_run(files, tmp_path, monkeypatch):
    # a validation loss that never improves after the first epoch: patience 2 stops at epoch 3
    monkeypatch.setattr(train_mod, "_validate", lambda *a: (1.0, {"Om": 0.1, "s8": 0.2}))
    train(*files, tmp_path, _config(epochs=6, patience=2), progress=False)
    rows = _rows(tmp_path)
    assert [r["best"] for r in rows] == [True, False, False]
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert last["progress"]["finished"] and last["progress"]["bad_epochs"] == 2


def _hand_mse(model, ckpt, data_path):
    norm = Normalization.from_dict(ckpt.norm)
    data = load_split(data_path, ckpt.kind, norm=norm)
    with torch.no_grad():
        pred = model(data.x[:]).double().numpy()
    phys = pred * np.array(norm.target_std) + np.array(norm.target_mean)
    with h5py.File(data_path) as f:
        truth = f["params"][...].astype("f8")
    return ((phys - truth) ** 2).mean(0)


def test_evaluate_writes_the_contract_json(files, cnn_run, tmp_path):
    out = tmp_path / "sub" / "test_metrics.json"
    result = evaluate(cnn_run / "model.pt", files[1], out)
    on_disk = json.loads(out.read_text())
    assert on_disk == result
    assert set(result) == {"mse", "mse_mean", "n", "r2", "mse_constant"}
    assert set(result["mse"]) == {"Om", "s8"} and result["n"] == 32
    assert all(type(v) is float for v in result["mse"].values())
    assert type(result["mse_mean"]) is float and type(result["n"]) is int
    model, ckpt = load_model(cnn_run / "model.pt")
    want = _hand_mse(model, ckpt, files[1])
    assert [result["mse"]["Om"], result["mse"]["s8"]] == pytest.approx(want, rel=1e-5)
    assert result["mse_mean"] == pytest.approx(want.mean(), rel=1e-5)
    # skill: R² = 1 − MSE / Var(y), and the MSE of always predicting the training mean
    with h5py.File(files[1]) as f:
        truth = f["params"][...].astype("f8")
    r2 = 1 - want / truth.var(0)
    const = ((truth - np.array(ckpt.norm["target_mean"])) ** 2).mean(0)
    assert [result["r2"]["Om"], result["r2"]["s8"]] == pytest.approx(r2, rel=1e-5)
    assert [result["mse_constant"][p] for p in ("Om", "s8")] == pytest.approx(const, rel=1e-6)
    # physical units: Ωm spans 0.2 (variance ≈ 0.0033), far from standardised O(1)
    assert result["mse"]["Om"] < 0.01


def test_sop_trains_on_a_cnn_backbone_and_evaluates(files, cnn_run, tmp_path):
    backbone = tmp_path / "cnn.pt"
    shutil.copy(cnn_run / "model.pt", backbone)
    frozen = {**TINY_SOP, "freeze_backbone": True}  # the default trains the backbone too
    cfg = _config("sop", epochs=1, backbone=str(backbone), model_options=frozen)
    train(*files, tmp_path / "sop", cfg, progress=False)
    backbone.unlink()  # the sop checkpoint is self-contained

    model, ckpt = load_model(tmp_path / "sop" / "model.pt")
    cnn, _ = load_model(cnn_run / "model.pt")
    # the frozen backbone inside is the trained cnn, and sop reuses the cnn's normalisation
    assert ckpt.norm == {
        **torch.load(cnn_run / "model.pt", weights_only=True)["norm"],
        "kind": "sop",
    }
    x = torch.randn(2, 2, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model.sop.backbone(x), cnn(x))

    result = evaluate(tmp_path / "sop" / "model.pt", files[1], tmp_path / "m.json")
    assert set(result) == {"mse", "mse_mean", "n", "r2", "mse_constant", "sop"}
    sop = result["sop"]
    assert sop["n_groups"] == 4 and type(sop["n_groups"]) is int
    assert 1.0 <= sop["mean_active_groups"] <= 4.0
    assert 0.0 < sop["mean_mask_fraction"] <= 1.0
    want = _hand_mse(model, ckpt, files[1])
    assert [result["mse"]["Om"], result["mse"]["s8"]] == pytest.approx(want, rel=1e-5)


def test_sop_needs_a_cnn_backbone(files, cnn_run, tmp_path):
    with pytest.raises(ValueError, match="backbone: the sop model wraps a trained cnn"):
        TrainConfig(kind="sop")
    stats_run = tmp_path / "stats"
    train(*files, stats_run, _config("stats", epochs=1), progress=False)
    cfg = _config("sop", epochs=1, backbone=str(stats_run / "model.pt"), model_options=TINY_SOP)
    with pytest.raises(ValueError, match="must be a trained cnn, got 'stats'"):
        train(*files, tmp_path / "sop", cfg, progress=False)


def test_select_device_and_runtime_settings(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    dev = select_device("auto")
    assert dev == torch.device("cuda")
    rt = runtime_settings(dev, amp=True, compile=True)
    assert rt.amp and rt.pin_memory and rt.non_blocking and rt.compile
    assert not runtime_settings(dev, amp=False).amp
    assert select_device("cuda") == torch.device("cuda")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    dev = select_device("auto")
    assert dev == torch.device("cpu")
    rt = runtime_settings(dev, amp=True, compile=True)
    assert not (rt.amp or rt.pin_memory or rt.non_blocking or rt.compile)
    assert isinstance(rt.autocast(), type(runtime_mod.contextlib.nullcontext()))
    with pytest.raises(RuntimeError, match=r"'cuda' requested, but torch.cuda.is_available"):
        select_device("cuda")
    with pytest.raises(ValueError, match="device: expected 'auto', 'cpu'"):
        select_device("tpu")


def test_warmup_cosine_schedule():
    f = WarmupCosine(warmup=4, total=20, min_ratio=0.1)
    assert [f(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4) == 1.0 and f(12) == pytest.approx(0.55) and f(20) == pytest.approx(0.1)
    assert WarmupCosine(0, 10, 0.0)(0) == 1.0


def test_config_round_trip_and_validation():
    cfg = _config("stats", patience=None, grad_clip=None)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=r"config: unknown keys \['nope'\]"):
        TrainConfig.from_dict({"nope": 1})
    with pytest.raises(ValueError, match="kind: expected one of"):
        TrainConfig(kind="vit")
    with pytest.raises(ValueError, match="lr: expected > 0"):
        TrainConfig(lr=0)
    with pytest.raises(ValueError, match="only the sop model takes a backbone"):
        TrainConfig(kind="cnn", backbone="x.pt")


def test_sop_stages_its_generator_and_logs_group_diagnostics(files, cnn_run, tmp_path):
    # selector_epochs=1: the generator does not move in epoch 1, then learns at 0.5 × lr.
    cfg = _config(
        "sop",
        epochs=2,
        backbone=str(cnn_run / "model.pt"),
        model_options=TINY_SOP,
        selector_epochs=1,
        generator_lr_ratio=0.5,
        checkpoint_every=0,
    )
    out = tmp_path / "sop"
    train(*files, out, dataclasses.replace(cfg, epochs=1), progress=False)
    after_one = load_model(out / "model.pt")[1].model_state
    # rebuild the untrained model the run started from (same seed) to compare
    cnn, _ = load_model(cnn_run / "model.pt")
    torch.manual_seed(cfg.seed)
    init = build_model("sop", in_channels=2, patch_size=16, n_outputs=2,
                       options=TINY_SOP, backbone=cnn).state_dict()  # fmt: skip
    gen_keys = [k for k in init if k.startswith("sop.generator.")]
    sel_keys = [k for k in init if k.startswith("sop.selector.")]
    assert gen_keys and sel_keys
    assert all(torch.equal(init[k], after_one[k]) for k in gen_keys)
    assert any(not torch.equal(init[k], after_one[k]) for k in sel_keys)

    train(*files, tmp_path / "sop2", cfg, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "sop2" / "metrics.jsonl").open()]
    assert len(rows) == 2
    for row in rows:
        assert 1 <= row["active_groups"] <= 4
        assert 1 <= row["distinct_masks"] <= 4
        assert 0 < row["coverage"] <= 1
    final = load_model(tmp_path / "sop2" / "last.pt")[1].model_state
    assert any(not torch.equal(init[k], final[k]) for k in gen_keys)
