"""simulate -> preprocess through the CLI, on a small simulated tree (issue 3's done-when)."""

import h5py
import numpy as np
import pytest

from sop_cosmo.cli import main
from sop_cosmo.cosmo.contracts.cosmogrid import read_metainfo


@pytest.fixture(scope="module")
def simulated(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    args = ["simulate", "--out", str(root), "--n-cosmologies", "6", "--n-perms", "2"]
    assert main([*args, "--nside", "64", "--seed", "11", "--quiet"]) == 0
    return root


def test_simulate_then_preprocess_gives_valid_patch_files(simulated, tmp_path):
    out = tmp_path / "patches"
    args = ["preprocess", "--root", str(simulated), "--out", str(out), "--patch-size", "16"]
    assert main([*args, "--noise", "des-y3", "--smoothing-arcmin", "120", "--quiet"]) == 0
    meta = read_metainfo(simulated / "CosmoGrid" / "CosmoGridV1_metainfo.h5")["grid"]
    ids_per_split = {}
    for split in ("train", "val", "test"):
        with h5py.File(out / f"{split}.h5") as f:
            kappa, params, ids = f["kappa"][()], f["params"][()], f["cosmo_id"][()]
            assert kappa.dtype == np.float32 and kappa.ndim == 4 and kappa.shape[1:] == (4, 16, 16)
            assert params.dtype == np.float32 and list(f["params"].attrs["names"]) == ["Om", "s8"]
            assert ids.dtype == np.int64 and len(ids) == len(kappa) == len(params) > 0
            assert f.attrs["source"] == "simulated" and f.attrs["noise"] == "des-y3"
            assert f.attrs["smoothing_arcmin"] == 120.0 and f.attrs["nside"] == 64
            assert np.isfinite(kappa).all() and (kappa < 0).any() and (kappa > 0).any()
            for cid in np.unique(ids):
                row = meta[f"cosmo_{cid:06d}"]
                expected = np.array([row["Om"], row["s8"]], dtype=np.float32)
                assert (params[ids == cid] == expected).all()
        ids_per_split[split] = set(ids.tolist())
    train, val, test = ids_per_split.values()
    assert not (train & val or train & test or val & test)
    assert len(train | val | test) == 6


def test_simulate_rejects_bad_nside(tmp_path, capsys):
    args = ["simulate", "--out", str(tmp_path), "--n-cosmologies", "2", "--nside", "100"]
    assert main([*args, "--quiet"]) == 2
    assert "nside" in capsys.readouterr().err
