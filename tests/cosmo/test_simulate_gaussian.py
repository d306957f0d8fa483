"""The Gaussian-maps null of the simulator: ``simulate --field gaussian`` draws Gaussian maps
with the lognormal maps' κ spectra, in the same layout, recorded as ``field``."""

from __future__ import annotations

from pathlib import Path

import h5py
import healpy as hp
import numpy as np
import pytest
from scipy.stats import skew

from sop_cosmo.cli import main
from sop_cosmo.cosmo.maths.cosmology import draw_cosmologies
from sop_cosmo.cosmo.maths.lognormal import (
    draw_gaussian_maps,
    kappa_cls,
    kappa_spectra,
    redshift_bins,
)
from sop_cosmo.cosmo.stages.simulate import simulate_grid

SEED, N_COSMO, N_PERMS, NSIDE = 11, 3, 2, 32
LMAX = 3 * NSIDE - 1
BANDS = ((5, 20), (20, 45), (45, 80))


def _map_path(root: Path, i: int, j: int) -> Path:
    return (root / "CosmoGrid/stage3_forecast/grid" / f"cosmo_{i:06d}" / f"perm_{j:04d}"
            / "projected_probes_maps_nobaryons512.h5")  # fmt: skip


def _kappa(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.stack([f[f"kg/stage3_lensing{b}"][()] for b in range(1, 5)]).astype(float)


@pytest.fixture(scope="module")
def grids(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = {}
    for field in ("lognormal", "gaussian"):
        root = tmp_path_factory.mktemp(field)
        simulate_grid(root, n_cosmologies=N_COSMO, n_perms=N_PERMS, nside=NSIDE, seed=SEED,
                      field=field, progress=False)  # fmt: skip
        out[field] = root
    return out


def test_gaussian_maps_have_the_lognormal_spectra_and_no_skewness(grids):
    skews = {"lognormal": [], "gaussian": []}
    for i in range(1, N_COSMO + 1):
        for j in range(N_PERMS):
            maps = {f: _kappa(_map_path(root, i, j)) for f, root in grids.items()}
            cls = {f: np.array([hp.anafast(m, lmax=LMAX) for m in v]) for f, v in maps.items()}
            for lo, hi in BANDS:
                # cosmic variance of a band power: sqrt(2 / Σ(2ℓ+1)); 3 of them allowed
                cv = np.sqrt(2.0 / np.sum(2 * np.arange(lo, hi) + 1))
                ratio = cls["gaussian"][:, lo:hi].sum(1) / cls["lognormal"][:, lo:hi].sum(1)
                assert np.all(np.abs(ratio - 1) < 3 * cv), (i, j, lo, hi, ratio)
            for f, v in maps.items():
                skews[f].append(skew(v, axis=1))
    s_l, s_g = np.array(skews["lognormal"]), np.array(skews["gaussian"])
    assert np.all(s_l > 0.1)  # every bin of every lognormal map is skewed
    assert np.all(np.abs(s_g) < 0.1)  # ~3 sampling σ of a Gaussian map's skewness here
    assert s_l.mean() > 10 * np.abs(s_g).mean()


def test_the_field_is_recorded_and_the_layout_is_the_same(grids):
    files = {f: sorted(p.relative_to(r) for p in r.rglob("*.h5")) for f, r in grids.items()}
    assert files["gaussian"] == files["lognormal"]
    for field, root in grids.items():
        with h5py.File(root / "CosmoGrid/CosmoGridV1_metainfo.h5", "r") as f:
            assert f.attrs["field"] == field
        with h5py.File(_map_path(root, 1, 0), "r") as f:
            assert f.attrs["field"] == field
            assert ("lognormal_lambda" in f.attrs) == (field == "lognormal")
            assert not np.any(f["ia/stage3_lensing1"][()])


def test_a_gaussian_map_equals_the_public_pieces(grids):
    params = draw_cosmologies(2, SEED)[1]
    cls = kappa_cls(params, LMAX, *redshift_bins())
    _, root, variance, clipped = kappa_spectra(cls)
    assert clipped == 0.0
    np.testing.assert_allclose(variance, [np.sum((2 * np.arange(LMAX + 1) + 1) * cls[b, b])
                                          / (4 * np.pi) for b in range(4)])  # fmt: skip
    rng = np.random.default_rng(np.random.SeedSequence(SEED, spawn_key=(2, 1)))
    expected = draw_gaussian_maps(root, NSIDE, rng)
    np.testing.assert_array_equal(_kappa(_map_path(grids["gaussian"], 2, 1)), expected)


def test_resume_redraws_maps_of_the_other_field(tmp_path):
    simulate_grid(tmp_path, n_cosmologies=1, n_perms=1, nside=8, seed=3, progress=False)
    path = _map_path(tmp_path, 1, 0)
    before = _kappa(path)
    simulate_grid(tmp_path, n_cosmologies=1, n_perms=1, nside=8, seed=3, field="gaussian",
                  progress=False)  # fmt: skip
    with h5py.File(path, "r") as f:
        assert f.attrs["field"] == "gaussian"
    assert not np.array_equal(before, _kappa(path))


def test_cli_field_option_and_its_error(tmp_path, capsys):
    code = main(["simulate", "--out", str(tmp_path), "--n-cosmologies", "3", "--nside", "8",
                 "--field", "gaussian", "--quiet"])  # fmt: skip
    assert code == 0
    with h5py.File(tmp_path / "CosmoGrid/CosmoGridV1_metainfo.h5", "r") as f:
        assert f.attrs["field"] == "gaussian"
    with pytest.raises(SystemExit) as err:
        main(["simulate", "--out", str(tmp_path / "x"), "--field", "gauss"])
    assert err.value.code == 2
    assert "--field" in capsys.readouterr().err
    with pytest.raises(ValueError, match="field"):
        simulate_grid(tmp_path / "y", n_cosmologies=3, nside=8, field="poisson", progress=False)
