"""The -F baselines of a tiny trained SOP: masking, predictions, and the CLI end to end."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from sop_cosmo.cli import main
from sop_cosmo.cosmo.config import SOPOptions, TrainConfig
from sop_cosmo.cosmo.explain import (
    MethodResult,
    backbone_forward,
    explain_map,
    fidelity_predictions,
    sop_patch_scores,
)
from sop_cosmo.cosmo.models import load_model
from sop_cosmo.cosmo.stages.attribute import ALL_METHODS, parse_methods, run_baselines
from sop_cosmo.cosmo.stages.train import train
from tests.cosmo.tree import write_patches


def _patch_file(path, n, seed):
    rng = np.random.default_rng(seed)
    params = np.stack([rng.uniform(0.1, 0.5, n), rng.uniform(0.4, 1.4, n)], 1).astype("f4")
    kappa = 0.01 * params[:, 1, None, None, None] * rng.standard_normal((n, 2, 24, 24))
    kappa = (kappa + 0.005 * params[:, 0, None, None, None]).astype("f4")
    write_patches(path, kappa, params, np.arange(n, dtype="i8") + 1000 * seed)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    # Tiny convolutions on a shared 2-core machine run ~10x faster on one thread.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("posthoc")
    for i, (split, n) in enumerate([("train", 64), ("val", 16), ("test", 6)]):
        _patch_file(d / f"{split}.h5", n, i)
    cnn = TrainConfig(kind="cnn", epochs=2, device="cpu", batch_size=16,
                      model_options={"widths": [8, 16], "hidden": [16]})  # fmt: skip
    train(d / "train.h5", d / "val.h5", d / "cnn", cnn, progress=False)
    options = {"attention_patch": 4, "n_groups": 4, "baseline": 0.25}
    sop = TrainConfig(kind="sop", epochs=1, device="cpu", batch_size=16,
                      backbone=str(d / "cnn" / "model.pt"), model_options=options)  # fmt: skip
    train(d / "train.h5", d / "val.h5", d / "sop", sop, progress=False)
    return d


def test_fidelity_prediction_is_the_backbone_on_the_masked_input(run):
    model, _ = load_model(run / "sop" / "model.pt", "cpu")
    bb, forward = backbone_forward(model)
    x = torch.randn(3, 2, 24, 24)
    keep = torch.rand(3, 36) < 0.3
    pix = keep.view(3, 1, 6, 6).repeat_interleave(4, -2).repeat_interleave(4, -1)
    by_hand = torch.where(pix, x, torch.tensor(0.25))  # the SOP's baseline value
    assert torch.allclose(fidelity_predictions(model, x, keep), forward(by_hand), atol=1e-6)
    with torch.no_grad():  # and the plain forward is the CNN itself
        assert torch.allclose(forward(x), bb(x), atol=1e-6)


@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_explain_map_keeps_ceil_k_n_patches_and_predicts_with_the_backbone(run, method):
    model, _ = load_model(run / "sop" / "model.pt", "cpu")
    _, forward = backbone_forward(model)
    x = torch.randn(2, 24, 24)
    res = MethodResult()
    explain_map(method, model, x, res, keep_fraction=0.3, n_samples=16, id_steps=6)
    masks = torch.from_numpy(res.masks[0]).reshape(2, 36)  # one mask per parameter
    assert masks.sum(1).tolist() == [math.ceil(0.3 * 36)] * 2
    for p in range(2):
        pix = masks[p].view(1, 6, 6).repeat_interleave(4, -2).repeat_interleave(4, -1)
        masked = torch.where(pix, x, torch.tensor(0.25))
        assert res.prediction[0][p] == pytest.approx(float(forward(masked[None])[0, p]), abs=1e-5)
    assert res.selected[0].tolist() == [[True, False], [False, True]]
    assert res.aucs["insertion"][0].shape == (2,) and res.curves["deletion"][0].shape == (2, 7)


def test_sop_patch_scores_project_contributions():
    masks = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    contrib = torch.tensor([[0.5, -1.0], [-2.0, 0.0]])
    scores = sop_patch_scores(masks, contrib)
    assert scores.tolist() == [[0.5, 2.5, 2.0], [1.0, 1.0, 0.0]]


def test_parse_methods():
    assert parse_methods("all") == ALL_METHODS
    assert parse_methods("rise,kernel_shap") == ("sop", "kernel_shap", "rise")
    with pytest.raises(ValueError, match="fullgrad"):
        parse_methods("rise,fullgrad")


def test_keep_fraction_one_gives_the_full_backbone(run, tmp_path):
    out = run_baselines(run / "sop" / "model.pt", run / "test.h5", tmp_path, methods="random",
                        keep_fraction=1.0, device="cpu", id_steps=4, progress=False)  # fmt: skip
    row = out["methods"]["random"]
    for name in ("Om", "s8"):
        assert row["mse"][name] == pytest.approx(out["backbone_mse"][name], rel=1e-5)


@pytest.mark.slow
def test_cli_baselines_end_to_end(run, tmp_path, capsys):
    from sop_cosmo.cosmo.stages.analyse import analyze

    out = tmp_path / "b"
    args = ["baselines", "--checkpoint", str(run / "sop" / "model.pt"), "--data",
            str(run / "test.h5"), "--out", str(out), "--max-maps", "6", "--n-samples", "8",
            "--ig-steps", "4", "--id-steps", "6", "--device", "cpu", "--quiet"]  # fmt: skip
    assert main(args) == 0
    assert "kernel_shap" in capsys.readouterr().out
    saved = json.loads((out / "baselines.json").read_text())
    rows = saved["methods"]
    assert list(rows) == list(ALL_METHODS)
    # the -F masks keep as many cells as the SOP's groups (its default keep_fraction)
    keep = SOPOptions().keep_fraction
    assert saved["keep_fraction"] == keep and saved["n_keep"] == math.ceil(keep * 36)
    for r in rows.values():
        assert r["mse_mean"] == pytest.approx(np.mean(list(r["mse"].values())))
        assert 0.0 <= r["purity"] <= 1.0 and r["seconds_per_map"] > 0
        assert r["insertion_auc"] >= 0.0 and r["deletion_auc"] >= 0.0
    for m in ALL_METHODS[1:]:  # every -F mask covers exactly ⌈k·N⌉ patches of 4×4 pixels
        assert rows[m]["mean_mask_fraction"] == pytest.approx(math.ceil(keep * 36) * 16 / 576)
    # SOP's row agrees with `evaluate` (all 6 maps) and with `analyze` on the same maps
    assert main(["evaluate", "--checkpoint", str(run / "sop" / "model.pt"), "--data",
                 str(run / "test.h5"), "--out", str(tmp_path / "m.json")]) == 0  # fmt: skip
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert rows["sop"]["mse"]["Om"] == pytest.approx(metrics["mse"]["Om"], rel=1e-4)
    # the baselines score purity with the per-patch rule: the analysis in patch units agrees
    summary = analyze(run / "sop" / "model.pt", run / "test.h5", tmp_path / "a", max_maps=6,
                      n_boot=10, device="cpu", progress=False, figures=False,
                      type_units="patch")  # fmt: skip
    assert rows["sop"]["purity"] == pytest.approx(summary["purity"])

    with (out / "baselines.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["method"] for r in table] == list(ALL_METHODS)
    assert {"mse_Om", "mse_s8", "mse_mean", "purity", "insertion_auc", "deletion_auc",
            "seconds_per_map"} <= set(table[0])  # fmt: skip
    for name in ("mse_vs_purity.png", "insertion_deletion.png"):
        assert (out / "figures" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*"))  # no temporary files left behind


def test_cli_refuses_a_cnn_checkpoint(run, tmp_path, capsys):
    args = ["baselines", "--checkpoint", str(run / "cnn" / "model.pt"), "--data",
            str(run / "test.h5"), "--out", str(tmp_path), "--quiet"]  # fmt: skip
    assert main(args) == 2
    assert "sop checkpoint" in capsys.readouterr().err
    # a foreign file and bad sample counts are clear errors too (exit 2), not tracebacks
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    args[2] = str(junk)
    assert main(args) == 2
    assert "not a sop-cosmo checkpoint" in capsys.readouterr().err
    args[2] = str(run / "sop" / "model.pt")
    assert main([*args, "--n-samples", "0"]) == 2
    assert "n_samples" in capsys.readouterr().err
