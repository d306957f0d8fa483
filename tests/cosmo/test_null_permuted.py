"""Acceptance (issue 13): on permuted labels the analysis makes no claim, and says why.

Tiny simulated maps are preprocessed twice with one seed: with their true targets, and with
``permute_labels`` (each training cosmology carries another's targets; val and test their
own). A tiny CNN and an SOP around it are trained on each. On the true labels the same models
learn (CNN test R² ≈ 0.7, SOP ≈ 0.55), so the null's lack of skill comes from the permutation,
not from models too small to learn. ``analyze`` of the null's SOP, on a test split with the 5
cosmologies the cosmology gate asks for, must make no claim, stopped by the skill gate.
"""

import pytest
import torch

from sop_cosmo.cosmo.config import PARAM_NAMES, TrainConfig
from sop_cosmo.cosmo.contracts.patchfile import read_attrs
from sop_cosmo.cosmo.stages.analyse import analyze
from sop_cosmo.cosmo.stages.evaluate import evaluate
from sop_cosmo.cosmo.stages.preprocess import preprocess
from sop_cosmo.cosmo.stages.simulate import simulate_grid
from sop_cosmo.cosmo.stages.train import train

pytestmark = pytest.mark.slow  # about 15 s on a shared 2-core machine

TINY_CNN = {"widths": [8], "kernel": 3, "hidden": [16]}
TINY_SOP = {"attention_patch": 4, "n_groups": 4, "keep_fraction": 0.25, "n_heads": 1}
COMMON = {"seed": 0, "device": "cpu", "checkpoint_every": 0, "lr": 3e-3, "patience": None}


def _pipeline(root, out, permute):
    """Preprocess (8 train, 3 val, 5 test cosmologies), then a CNN and an SOP around it."""
    data = out / "patches"
    preprocess(root, data, patch_size=16, bins=(1, 4), fractions=(0.5, 0.2, 0.3),
               permute_labels=permute, progress=False)  # fmt: skip
    tr, va = data / "train.h5", data / "val.h5"
    cnn = train(tr, va, out / "cnn", TrainConfig(kind="cnn", epochs=10, model_options=TINY_CNN,
                **COMMON), progress=False)  # fmt: skip
    sop = train(tr, va, out / "sop", TrainConfig(kind="sop", epochs=6, backbone=str(cnn),
                model_options=TINY_SOP, **COMMON), progress=False)  # fmt: skip
    r2 = {k: evaluate(m, data / "test.h5", out / f"{k}.json", device="cpu")["r2"]
          for k, m in (("cnn", cnn), ("sop", sop))}  # fmt: skip
    return data, sop, r2


def test_permuted_labels_yield_no_claim(tmp_path):
    torch.set_num_threads(1)
    root = tmp_path / "sim"
    simulate_grid(root, n_cosmologies=16, nside=32, seed=3, progress=False)
    _, _, true_r2 = _pipeline(root, tmp_path / "true", permute=False)
    data, sop, null_r2 = _pipeline(root, tmp_path / "null", permute=True)
    attrs = read_attrs(data / "test.h5")
    assert attrs["permute_labels"] is True and len(attrs["label_permutation"][0]) == 8
    for p in PARAM_NAMES:  # the twin on true labels learns; the null does not
        assert true_r2["cnn"][p] > 0.5 and true_r2["cnn"][p] > null_r2["cnn"][p] + 0.5, p
        assert true_r2["sop"][p] > null_r2["sop"][p] + 0.3, (p, true_r2, null_r2)

    summary = analyze(sop, data / "test.h5", tmp_path / "analyze", n_boot=100, device="cpu",
                      progress=False, figures=False)  # fmt: skip
    assert summary["claims"] == []
    skill = summary["skill"]
    assert skill["passed"] is False
    assert all(r is None or r < skill["min_r2"] for r in skill["r2"].values()), skill
    assert summary["no_claim"].startswith("the models have no skill to interpret"), summary
    assert summary["bootstrap"]["n_cosmologies"] == 5 and summary["permute_labels"] is True
    # every candidate failed the skill gate; the cosmology gate passed, so skill stopped them
    checks = summary["claim_checks"]
    assert checks and all(not c["passed"] and not c["gates"]["skill"] for c in checks)
    assert all(c["gates"]["cosmologies"] for c in checks)
