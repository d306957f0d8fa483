"""An SOP whose candidate groups are watershed basins: train, evaluate and explain it."""

import json

import numpy as np
import pytest
import torch

from sop_cosmo.cli import main
from sop_cosmo.core import group_diagnostics
from sop_cosmo.cosmo.explain import MethodResult, explain_map
from sop_cosmo.cosmo.maths.segments import grid_segments
from sop_cosmo.cosmo.models import build_model, load_model
from tests.cosmo.test_posthoc import _one_thread, _patch_file  # noqa: F401 (a fixture)

OPTIONS = {"generator": "watershed", "attention_patch": 4, "n_groups": 6, "active_groups": 2,
           "segment_smoothing": 1.0}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("watershed")
    for i, (split, n) in enumerate([("train", 48), ("val", 16), ("test", 8)]):
        _patch_file(d / f"{split}.h5", n, i)
    base = ["train", "--train", str(d / "train.h5"), "--val", str(d / "val.h5"), "--device",
            "cpu", "--batch-size", "16", "--quiet"]  # fmt: skip
    cnn = ["--model-options", '{"widths": [8], "kernel": 3, "hidden": [16]}']
    assert main([*base, "--model", "cnn", "--out", str(d / "cnn"), "--epochs", "1", *cnn]) == 0
    assert main([*base, "--model", "sop", "--out", str(d / "sop"), "--epochs", "1",
                 "--backbone", str(d / "cnn" / "model.pt"),
                 "--model-options", json.dumps(OPTIONS)]) == 0  # fmt: skip
    return d


def test_watershed_sop_trains_and_evaluates(run):
    rows = [json.loads(r) for r in (run / "sop" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and np.isfinite(rows[0]["val_loss"])
    assert 1.0 <= rows[0]["active_groups"] <= 2.0  # the budget of 2, fewer only with 1 segment
    out = run / "sop" / "test_metrics.json"
    args = ["--data", str(run / "test.h5"), "--out", str(out), "--device", "cpu"]
    assert main(["evaluate", "--checkpoint", str(run / "sop" / "model.pt"), *args]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["n"] == 8 and metrics["sop"]["n_groups"] == 6
    assert 1.0 <= metrics["sop"]["mean_active_groups"] <= 2.0
    model, ckpt = load_model(run / "sop" / "model.pt")
    assert ckpt.options["generator"] == "watershed" and model.sop.generator is None


def test_groups_are_the_basins_of_the_last_bin_and_the_prediction_their_weighted_sum(run):
    model, _ = load_model(run / "sop" / "model.pt")
    x = torch.randn(3, 2, 24, 24)
    with torch.no_grad():
        out = model.explain(x)
    seg = grid_segments(x[:, -1].numpy(), 4, smoothing=1.0)
    assert np.array_equal(model.segments(x).ids, seg.ids)
    masks = out.masks.numpy()  # (B, G, 6, 6): group g is segment g
    for b in range(3):
        n_seg = int((seg.types[b] >= 0).sum())
        for g in range(6):
            assert np.array_equal(masks[b, g] > 0.5, seg.ids[b] == g)
        assert out.group_valid[b].sum() == min(n_seg, 6)
    assert (out.weights[~out.group_valid] == 0).all()
    torch.testing.assert_close(out.weights.sum(1), torch.ones(3, 2))
    torch.testing.assert_close(out.prediction, (out.weights * out.group_outputs).sum(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x), out.prediction)
    assert 0 < group_diagnostics(out)["coverage"] <= 1


def test_explain_map_runs_on_the_watershed_sop(run):
    model, _ = load_model(run / "sop" / "model.pt")
    res = MethodResult()
    explain_map("sop", model, torch.randn(2, 24, 24), res, keep_fraction=0.2, id_steps=6)
    assert res.masks[0].shape == (6, 6, 6) and res.selected[0].shape == (6, 2)
    active = res.selected[0].sum(0)  # per parameter: the budget of 2, fewer with 1 segment
    assert ((active >= 1) & (active <= 2)).all()
    for name in ("insertion", "deletion", "grouped_insertion", "grouped_deletion"):
        assert np.isfinite(res.aucs[name][0]).all(), name


def test_watershed_options_are_checked(run):
    cnn, _ = load_model(run / "cnn" / "model.pt")
    shape = {"in_channels": 2, "patch_size": 24, "n_outputs": 2}
    with pytest.raises(ValueError, match="generator: expected one of"):
        build_model("sop", **shape, options={"generator": "voronoi"}, backbone=cnn)
    with pytest.raises(ValueError, match="segment_bin: expected a bin index from -2 to 1"):
        build_model("sop", **shape, options={**OPTIONS, "segment_bin": 2}, backbone=cnn)
