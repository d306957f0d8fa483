"""The target basis: derived S8 = σ8 (Ωm/0.3)^0.5, and the S8 basis (S8, Ωm) end to end."""

import json

import h5py
import numpy as np
import pytest
from scipy.stats import qmc

from sop_cosmo.cli import main
from sop_cosmo.cosmo.contracts.cosmogrid import read_metainfo
from sop_cosmo.cosmo.maths.cosmology import PARAMETER_NAMES, PRIORS, om_s8_allowed
from sop_cosmo.cosmo.maths.targets import allowed_targets, check_targets, target_values

TINY_CNN = '{"widths": [4], "hidden": [8]}'
TINY_SOP = '{"attention_patch": 4, "n_groups": 4}'


def test_s8_is_sigma8_times_root_omega_m_over_0_3():
    p = {"Om": 0.27, "s8": 0.84, "H0": 67.0}
    got = target_values(p, ["S8", "Om", "s8"])
    assert got.dtype == np.float32
    assert got == pytest.approx([0.84 * np.sqrt(0.27 / 0.3), 0.27, 0.84], rel=1e-6)
    assert target_values({"Om": 0.3, "s8": 0.8}, ["S8"]) == pytest.approx([0.8])
    # a metainfo that stores S8 itself is the truth
    assert target_values({"Om": 0.3, "s8": 0.8, "S8": 0.5}, ["S8"]) == pytest.approx([0.5])


def test_allowed_and_unknown_targets_name_the_allowed_ones():
    assert allowed_targets(["s8", "Om", "H0"]) == ["H0", "Om", "s8", "S8"]
    assert allowed_targets(["H0"]) == ["H0"]  # no S8 without Om and s8
    assert check_targets(("S8", "Om"), PARAMETER_NAMES) == ["S8", "Om"]
    with pytest.raises(ValueError, match=r"^params: unknown 'S9'; allowed: As, .*, w0, S8 "):
        check_targets(["S9", "Om"], PARAMETER_NAMES)
    with pytest.raises(ValueError, match="'Om' named twice"):
        check_targets(["Om", "Om"], PARAMETER_NAMES)


def test_s8_and_omega_m_are_nearly_uncorrelated_over_the_grid_polygon():
    """The claim of docs/analysis.md, "Target basis": over the Ωm–σ8 polygon the two
    parameters are strongly anti-correlated, while S8 and Ωm are nearly orthogonal."""
    u = qmc.Sobol(d=2, scramble=True, seed=0).random_base2(13)
    om = PRIORS["Om"][0] + u[:, 0] * (PRIORS["Om"][1] - PRIORS["Om"][0])
    s8 = PRIORS["s8"][0] + u[:, 1] * (PRIORS["s8"][1] - PRIORS["s8"][0])
    keep = om_s8_allowed(om, s8)
    om, s8 = om[keep], s8[keep]
    big_s8 = s8 * np.sqrt(om / 0.3)
    assert np.corrcoef(om, s8)[0, 1] == pytest.approx(-0.69, abs=0.03)
    assert np.corrcoef(big_s8, om)[0, 1] == pytest.approx(-0.09, abs=0.03)


@pytest.fixture(scope="module")
def s8_patches(tmp_path_factory):
    d = tmp_path_factory.mktemp("s8basis")
    sim = ["simulate", "--out", str(d / "sim"), "--n-cosmologies", "6", "--nside", "16"]
    assert main([*sim, "--seed", "1", "--quiet"]) == 0
    pre = ["preprocess", "--root", str(d / "sim"), "--out", str(d / "p"), "--patch-size", "8"]
    assert main([*pre, "--params", "S8,Om", "--bins", "1,4", "--fractions", "0.5,0.17,0.33",
                 "--quiet"]) == 0  # fmt: skip
    return d


def test_preprocess_s8_basis_takes_s8_from_the_metainfo(s8_patches):
    meta = read_metainfo(s8_patches / "sim" / "CosmoGrid" / "CosmoGridV1_metainfo.h5")["grid"]
    seen = set()
    for split in ("train", "val", "test"):
        with h5py.File(s8_patches / "p" / f"{split}.h5") as f:
            assert list(f["params"].attrs["names"]) == ["S8", "Om"]
            params, ids = f["params"][()], f["cosmo_id"][()]
        for cid in np.unique(ids):
            row = meta[f"cosmo_{cid:06d}"]
            want = np.array([row["s8"] * np.sqrt(row["Om"] / 0.3), row["Om"]], dtype=np.float32)
            assert (params[ids == cid] == want).all()
            seen.add(int(cid))
    assert len(seen) == 6


def test_unknown_target_is_a_one_line_cli_error(s8_patches, capsys):
    args = ["preprocess", "--root", str(s8_patches / "sim"), "--out", str(s8_patches / "x")]
    assert main([*args, "--params", "S9,Om", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown 'S9'" in err and "allowed: " in err
    assert "S8" in err and not (s8_patches / "x").exists()


@pytest.mark.slow  # about 7 s on a shared 2-core machine, after the 5 s fixture
def test_s8_basis_flows_through_train_evaluate_and_analyze(s8_patches, tmp_path):
    p = s8_patches / "p"
    base = ["train", "--train", str(p / "train.h5"), "--val", str(p / "val.h5"),
            "--device", "cpu", "--quiet", "--epochs", "1"]  # fmt: skip
    assert main([*base, "--model", "cnn", "--out", str(tmp_path / "cnn"),
                 "--model-options", TINY_CNN]) == 0  # fmt: skip
    assert main([*base, "--model", "sop", "--out", str(tmp_path / "sop"),
                 "--backbone", str(tmp_path / "cnn" / "model.pt"),
                 "--model-options", TINY_SOP]) == 0  # fmt: skip
    ev = tmp_path / "cnn.json"
    assert main(["evaluate", "--checkpoint", str(tmp_path / "cnn" / "model.pt"), "--data",
                 str(p / "test.h5"), "--out", str(ev), "--device", "cpu"]) == 0  # fmt: skip
    metrics = json.loads(ev.read_text())
    assert list(metrics["mse"]) == list(metrics["r2"]) == ["S8", "Om"]
    out = tmp_path / "analyze"
    assert main(["analyze", "--checkpoint", str(tmp_path / "sop" / "model.pt"),
                 "--data", str(p / "test.h5"), "--out", str(out), "--n-boot", "50",
                 "--device", "cpu", "--quiet"]) == 0  # fmt: skip
    s = json.loads((out / "summary.json").read_text())
    assert s["param_names"] == s["difference_params"] == ["S8", "Om"]  # S8 − Ωm at fixed S8
    assert list(s["contributions"]) == list(s["skill"]["r2"]) == ["S8", "Om"]
    assert list(s["skill"]["mse_constant"]) == ["S8", "Om"]
    assert set(s["differences"]) == {"void", "cluster", "other"}
    with h5py.File(out / "groups.h5") as f:
        assert [str(n) for n in f.attrs["param_names"]] == ["S8", "Om"]
