"""``simulate(metainfo_only=True)``: the grid's metainfo without maps, for planning a workflow."""

import h5py
import numpy as np
import pytest

from sop_cosmo.cosmo.contracts.cosmogrid import CosmoGridError, find_maps, read_metainfo
from sop_cosmo.cosmo.stages.simulate import simulate_grid


def test_metainfo_only_writes_the_same_rows_and_no_maps(tmp_path):
    full = simulate_grid(tmp_path / "full", n_cosmologies=3, n_perms=1, nside=8, seed=2,
                         progress=False)  # fmt: skip
    plan = simulate_grid(tmp_path / "plan", n_cosmologies=5, n_perms=7, nside=512, seed=2,
                         metainfo_only=True, progress=False)  # fmt: skip
    assert [p.name for p in (tmp_path / "plan").rglob("*") if p.is_file()] == [plan.name]
    with h5py.File(plan) as f:
        assert f.attrs["metainfo_only"] and f.attrs["n_perms"] == 7 and f.attrs["nside"] == 512
        rows = f["parameters/grid"][()]
    with h5py.File(full) as f:
        assert not f.attrs["metainfo_only"]
        # the draws are a prefix of a larger grid's: the first three rows are the full run's
        np.testing.assert_array_equal(f["parameters/grid"][()], rows[:3])
    assert sorted(read_metainfo(plan)["grid"]) == [f"cosmo_{i:06d}" for i in range(1, 6)]
    with pytest.raises(CosmoGridError, match="stage3_forecast: not found"):
        find_maps(tmp_path / "plan")  # nothing to preprocess: it plans, it does not run
