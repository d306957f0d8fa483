"""The train and evaluate subcommands exactly as docs/contracts.md ("CLI") writes them."""

import json

import h5py
import numpy as np
import pytest

from sop_cosmo.cli import main


def _patch_file(path, n, seed):
    rng = np.random.default_rng(seed)
    params = np.stack([rng.uniform(0.1, 0.5, n), rng.uniform(0.4, 1.4, n)], 1).astype("f4")
    kappa = (0.01 * params[:, 1, None, None, None] * rng.standard_normal((n, 2, 24, 24))
             + 0.005 * params[:, 0, None, None, None]).astype("f4")  # fmt: skip
    with h5py.File(path, "w") as f:
        f["kappa"] = kappa
        f["params"] = params
        f["params"].attrs["names"] = ["Om", "s8"]
        f["cosmo_id"] = np.arange(n, dtype="i8") + 1000 * seed
        attrs = {"pixel_arcmin": 6.87, "patch_size": 24, "nside": 64, "bins": [1, 2],
                 "smoothing_arcmin": 0.0, "noise": "none", "source": "simulated"}  # fmt: skip
        f.attrs.update(attrs)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("patches")
    for i, (split, n) in enumerate([("train", 96), ("val", 32), ("test", 32)]):
        _patch_file(d / f"{split}.h5", n, i)
    return d


def test_train_cnn_then_sop_then_evaluate(data, tmp_path):
    cnn = ["--model-options", '{"widths": [8, 16], "hidden": [16]}']
    base = ["train", "--train", str(data / "train.h5"), "--val", str(data / "val.h5")]
    assert main([*base, "--model", "cnn", "--out", str(tmp_path / "cnn"), "--epochs", "2",
                 "--device", "cpu", "--seed", "1", "--quiet", *cnn]) == 0  # fmt: skip
    assert (tmp_path / "cnn" / "model.pt").exists()
    assert len((tmp_path / "cnn" / "metrics.jsonl").read_text().splitlines()) == 2
    sop = ["--model-options", '{"attention_patch": 4, "n_groups": 4}']
    assert main([*base, "--model", "sop", "--out", str(tmp_path / "sop"), "--epochs", "1",
                 "--backbone", str(tmp_path / "cnn" / "model.pt"), "--device", "cpu", "--quiet",
                 *sop]) == 0  # fmt: skip
    out = tmp_path / "sop" / "test_metrics.json"
    assert main(["evaluate", "--checkpoint", str(tmp_path / "sop" / "model.pt"),
                 "--data", str(data / "test.h5"), "--out", str(out)]) == 0  # fmt: skip
    metrics = json.loads(out.read_text())
    assert set(metrics["mse"]) == {"Om", "s8"} and metrics["n"] == 32
    assert metrics["mse_mean"] == pytest.approx(np.mean(list(metrics["mse"].values())))
    assert 0 < metrics["sop"]["mean_active_groups"] <= 4


def test_sop_without_backbone_is_refused(data, tmp_path, capsys):
    args = ["train", "--train", str(data / "train.h5"), "--val", str(data / "val.h5"),
            "--model", "sop", "--out", str(tmp_path / "r"), "--quiet"]  # fmt: skip
    assert main(args) == 2
    assert "backbone" in capsys.readouterr().err
