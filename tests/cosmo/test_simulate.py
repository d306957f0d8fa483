"""Tests of the built-in lognormal CosmoGridV1 simulator (sop_cosmo.cosmo.stages.simulate,
sop_cosmo.cosmo.maths.cosmology, sop_cosmo.cosmo.maths.lognormal)."""

from __future__ import annotations

from pathlib import Path

import h5py
import healpy as hp
import numpy as np
import pytest
from scipy.stats import skew

from sop_cosmo.cosmo.maths.cosmology import (
    FIDUCIAL,
    draw_cosmologies,
    om_s8_allowed,
    scalar_amplitude,
)
from sop_cosmo.cosmo.maths.lognormal import (
    gaussian_cls,
    kappa_cls,
    lognormal_maps,
    lognormal_shifts,
    redshift_bins,
)
from sop_cosmo.cosmo.stages.simulate import simulate_grid

SEED = 11
N_COSMO, N_PERMS, NSIDE = 3, 2, 32
BINS = [f"stage3_lensing{b}" for b in range(1, 5)]


def _map_path(root: Path, i: int, j: int) -> Path:
    return (
        root
        / "CosmoGrid/stage3_forecast/grid"
        / f"cosmo_{i:06d}"
        / f"perm_{j:04d}"
        / "projected_probes_maps_nobaryons512.h5"
    )


def _simulate(root: Path, n_cosmologies: int, n_perms: int, nside: int, seed: int, **kw) -> Path:
    return simulate_grid(
        root, n_cosmologies=n_cosmologies, n_perms=n_perms, nside=nside, seed=seed, **kw
    )


def _kappa(path: Path) -> np.ndarray:
    with h5py.File(path, "r") as f:
        return np.stack([f[f"kg/{b}"][()] for b in BINS])


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("grid")
    meta = _simulate(root, N_COSMO, N_PERMS, NSIDE, SEED, progress=False)
    assert meta == root / "CosmoGrid" / "CosmoGridV1_metainfo.h5"
    return root


@pytest.fixture(scope="module")
def nz() -> tuple[np.ndarray, np.ndarray]:
    return redshift_bins()


# ---------------------------------------------------------------------------------------------
# the written tree
# ---------------------------------------------------------------------------------------------
def test_tree_has_exactly_the_contract_files(grid: Path) -> None:
    written = {p.relative_to(grid).as_posix() for p in grid.rglob("*") if p.is_file()}
    expected = {"CosmoGrid/CosmoGridV1_metainfo.h5"} | {
        _map_path(Path(), i, j).as_posix() for i in range(1, N_COSMO + 1) for j in range(N_PERMS)
    }
    assert written == expected  # also: no temporary files left behind


def test_map_datasets_dtypes_compression_and_attrs(grid: Path) -> None:
    npix = 12 * NSIDE**2
    for i in range(1, N_COSMO + 1):
        for j in range(N_PERMS):
            with h5py.File(_map_path(grid, i, j), "r") as f:
                assert set(f) == {"kg", "ia", "dg"}
                for probe in ("kg", "ia", "dg"):
                    assert sorted(f[probe]) == BINS
                    for b in BINS:
                        d = f[f"{probe}/{b}"]
                        assert d.shape == (npix,)
                        assert d.dtype == np.float32
                        assert d.compression == "gzip"
                        assert d.compression_opts == 4
                        assert d.shuffle
                        if probe != "kg":
                            assert not np.any(d[()])
                        else:
                            assert np.all(np.isfinite(d[()])) and np.std(d[()]) > 0
                a = f.attrs
                assert a["nside"] == NSIDE
                assert a["seed"] == SEED
                assert a["simulator"] == "sop-cosmo lognormal"
                assert a["lognormal_shift"] == (
                    "heuristic: lambda_b ∝ empty-beam convergence scaled with Om "
                    "(not a published calibration)"
                )
                assert list(a["seed_spawn_key"]) == [i, j]
                for k in ("Om", "s8", "H0", "Ob", "ns", "w0", "As"):
                    assert np.isfinite(a[k])


def test_metainfo_rows_match_the_map_folders(grid: Path) -> None:
    with h5py.File(grid / "CosmoGrid/CosmoGridV1_metainfo.h5", "r") as f:
        table = f["parameters/grid"][()]
        fiducial = f["parameters/fiducial"][()]
    names = table.dtype.names
    for k in ("Om", "s8", "H0", "Ob", "ns", "w0", "As"):
        assert k in names and table.dtype[k].kind == "f"
    assert table.dtype["path_par"].kind == "S"
    assert len(table) == N_COSMO
    assert fiducial.dtype == table.dtype and len(fiducial) == 0
    assert np.all(table["As"] > 0)
    by_folder = {row["path_par"].decode().rstrip("/").split("/")[-1]: row for row in table}
    folders = sorted(p.name for p in (grid / "CosmoGrid/stage3_forecast/grid").iterdir())
    assert sorted(by_folder) == folders
    for folder in folders:
        row = by_folder[folder]
        for perm in (grid / "CosmoGrid/stage3_forecast/grid" / folder).iterdir():
            with h5py.File(perm / "projected_probes_maps_nobaryons512.h5", "r") as f:
                for k in ("Om", "s8", "H0", "Ob", "ns", "w0", "As"):
                    assert f.attrs[k] == row[k]
    assert np.all(om_s8_allowed(table["Om"], table["s8"]))


def test_maps_are_shifted_lognormal(grid: Path) -> None:
    with h5py.File(_map_path(grid, 1, 0), "r") as f:
        lam = f.attrs["lognormal_lambda"]
    kappa = _kappa(_map_path(grid, 1, 0)).astype(float)
    assert np.all(kappa.min(axis=1) > -lam)  # κ_b > −λ_b
    assert np.all(np.abs(kappa.mean(axis=1)) < 0.2 * kappa.std(axis=1))
    assert np.all(skew(kappa, axis=1) > 0)


def test_scalar_amplitude_positive_and_increasing_with_s8() -> None:
    a_s = [scalar_amplitude({"Om": 0.3, "s8": s8}) for s8 in (0.6, 0.8, 1.0, 1.2)]
    assert all(a > 0 for a in a_s)
    assert np.all(np.diff(a_s) > 0)
    # linear theory: A_s ∝ s8² at fixed other parameters
    assert np.allclose(np.array(a_s) / np.array([0.6, 0.8, 1.0, 1.2]) ** 2, a_s[2], rtol=1e-6)
    # Planck-like cosmology without massive neutrinos: A_s = 2.1e-9 gives σ8 ≈ 0.83
    planck = {"Om": 0.315, "s8": 0.83, "H0": 67.36, "Ob": 0.0493, "ns": 0.9649, "w0": -1.0}
    assert 1.8e-9 < scalar_amplitude(planck) < 2.4e-9


# ---------------------------------------------------------------------------------------------
# reproducibility and seeds
# ---------------------------------------------------------------------------------------------
def test_same_seed_gives_identical_bytes_independent_of_grid_size(
    grid: Path, tmp_path: Path
) -> None:
    _simulate(tmp_path, 2, 1, NSIDE, SEED, progress=False)
    for i in (1, 2):
        a, b = _kappa(_map_path(grid, i, 0)), _kappa(_map_path(tmp_path, i, 0))
        assert a.tobytes() == b.tobytes()


def test_perms_and_cosmologies_differ(grid: Path) -> None:
    k10, k11, k20 = (_kappa(_map_path(grid, i, j)) for i, j in ((1, 0), (1, 1), (2, 0)))
    assert not np.array_equal(k10, k11)
    assert not np.array_equal(k10, k20)
    # different perms are independent draws: their correlation is small
    assert abs(np.corrcoef(k10[3], k11[3])[0, 1]) < 0.2


def test_written_map_equals_the_public_pieces(grid: Path, nz: tuple) -> None:
    z, n_z = nz
    params = draw_cosmologies(1, SEED)[0]
    cls = kappa_cls(params, 3 * NSIDE - 1, z, n_z)
    shifts = lognormal_shifts(params, z, n_z)
    rng = np.random.default_rng(np.random.SeedSequence(SEED).spawn(2)[1].spawn(2)[1])
    expected = lognormal_maps(cls, shifts, NSIDE, rng)
    assert expected.shape == (4, 12 * NSIDE**2) and expected.dtype == np.float32
    np.testing.assert_array_equal(_kappa(_map_path(grid, 1, 1)), expected)


def test_rerun_resumes_without_rewriting(tmp_path: Path) -> None:
    _simulate(tmp_path, 2, 1, 8, 3, progress=False)
    maps = sorted(tmp_path.rglob("projected_probes_maps_nobaryons512.h5"))
    before = {p: p.stat().st_mtime_ns for p in maps}
    _simulate(tmp_path, 2, 1, 8, 3, progress=False)
    assert {p: p.stat().st_mtime_ns for p in maps} == before


def test_stray_folders_from_a_bigger_grid_are_refused(tmp_path: Path) -> None:
    _simulate(tmp_path, 2, 2, 8, 3, progress=False)
    with pytest.raises(ValueError, match="out_root"):
        _simulate(tmp_path, 1, 2, 8, 3, progress=False)
    with pytest.raises(ValueError, match="out_root"):
        _simulate(tmp_path, 2, 1, 8, 3, progress=False)


def test_progress_bar_goes_to_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # captured stderr is no terminal: bars print lines, here without waiting an interval
    monkeypatch.setattr("sop_cosmo._progress.LINE_INTERVAL_S", 0.0)
    _simulate(tmp_path, 1, 2, 4, 0, progress=True)
    captured = capsys.readouterr()
    assert "simulate: 100%" in captured.err and "2/2" in captured.err
    assert "\r" not in captured.err and "2/2" not in captured.out


# ---------------------------------------------------------------------------------------------
# cosmologies
# ---------------------------------------------------------------------------------------------
def test_draws_respect_priors_polygon_and_are_reproducible() -> None:
    draws = draw_cosmologies(24, seed=5)
    assert len(draws) == 24
    om = np.array([d["Om"] for d in draws])
    s8 = np.array([d["s8"] for d in draws])
    assert np.all((om >= 0.1) & (om <= 0.5) & (s8 >= 0.4) & (s8 <= 1.4))
    assert np.all(om_s8_allowed(om, s8))
    assert len(set(om)) == 24
    for d in draws:
        assert set(d) == {"Om", "s8", "H0", "Ob", "ns", "w0", "As"}
        assert (d["H0"], d["Ob"], d["ns"], d["w0"]) == (67.36, 0.0493, 0.9649, -1.0)
    assert draw_cosmologies(24, seed=5) == draws
    assert draw_cosmologies(10, seed=5) == draws[:10]  # prefix-stable
    assert draw_cosmologies(4, seed=6) != draws[:4]


def test_polygon_membership() -> None:
    inside = [(0.3, 0.8), (0.15, 1.3), (0.45, 0.5), (0.2, 0.9)]
    outside = [(0.45, 1.3), (0.12, 0.45), (0.35, 1.2), (0.15, 0.5), (0.6, 0.8)]
    assert np.all(om_s8_allowed(*np.array(inside).T))
    assert not np.any(om_s8_allowed(*np.array(outside).T))


def test_vary_draws_other_parameters_in_canonical_order() -> None:
    draws = draw_cosmologies(6, seed=2, vary=("w0", "H0"))
    assert draws == draw_cosmologies(6, seed=2, vary=("H0", "w0"))
    w0 = np.array([d["w0"] for d in draws])
    h0 = np.array([d["H0"] for d in draws])
    assert np.all((w0 >= -2.0) & (w0 <= -0.333)) and len(set(w0)) == 6
    assert np.all((h0 >= 64.0) & (h0 <= 82.0)) and len(set(h0)) == 6
    assert all(d["Ob"] == 0.0493 and d["ns"] == 0.9649 for d in draws)


# ---------------------------------------------------------------------------------------------
# n(z), spectra and the lognormal statistics
# ---------------------------------------------------------------------------------------------
def test_redshift_bin_means(nz: tuple) -> None:
    z, n_z = nz
    assert n_z.shape == (4, z.size) and np.all(n_z >= 0)
    np.testing.assert_allclose(np.trapezoid(n_z, z, axis=1), 1.0, rtol=1e-10)
    means = np.trapezoid(n_z * z, z, axis=1)
    np.testing.assert_allclose(means, [0.31, 0.48, 0.76, 0.94], atol=0.03)
    assert redshift_bins(n_z=64)[1].shape == (4, 64)


def test_kappa_cls_shape_and_ordering(nz: tuple) -> None:
    cls = kappa_cls(FIDUCIAL, 95, *nz)
    assert cls.shape == (4, 4, 96)
    np.testing.assert_array_equal(cls, cls.transpose(1, 0, 2))
    assert not np.any(cls[..., :2])
    auto = cls[np.arange(4), np.arange(4), 2:]
    assert np.all(auto > 0) and np.all(np.diff(auto, axis=0) > 0)  # grows with redshift


def test_shift_heuristic(nz: tuple) -> None:
    lam = lognormal_shifts(FIDUCIAL, *nz)
    assert lam[-1] == pytest.approx(0.027)
    assert np.all(np.diff(lam) > 0)
    low, high = (lognormal_shifts({"Om": om, "s8": 0.8}, *nz) for om in (0.1, 0.5))
    assert np.all(high > 2.5 * low)
    assert np.array_equal(lam, lognormal_shifts({**FIDUCIAL, "s8": 1.2}, *nz))


def test_recovered_power_spectra_match_the_input(nz: tuple) -> None:
    nside, n_real = 128, 3
    lmax = 3 * nside - 1
    cls = kappa_cls(FIDUCIAL, lmax, *nz)
    shifts = lognormal_shifts(FIDUCIAL, *nz)
    _, clipped = gaussian_cls(cls, shifts)
    assert clipped == 0.0
    pairs = [(0, 0), (1, 1), (2, 2), (3, 3), (0, 3), (1, 2)]
    measured = {p: np.zeros(lmax + 1) for p in pairs}
    for r in range(n_real):
        maps = lognormal_maps(cls, shifts, nside, np.random.default_rng([r, 2024]))
        # anafast's two steps, so that each map is analysed once for autos and crosses
        alms = [hp.map2alm(m.astype(float), lmax=lmax, iter=1) for m in maps]
        for a, b in pairs:
            measured[(a, b)] += hp.alm2cl(alms[a], alms[b]) / n_real
    for a, b in pairs:
        for lo, hi in ((30, 80), (80, 140), (140, 201)):
            ratio = measured[(a, b)][lo:hi].sum() / cls[a, b, lo:hi].sum()
            assert abs(ratio - 1) < 0.05, (a, b, lo, hi, ratio)


def test_std_and_skewness_respond_to_om_and_s8(nz: tuple) -> None:
    nside = 128

    def stats(om: float, s8: float) -> tuple[np.ndarray, np.ndarray]:
        p = {"Om": om, "s8": s8}
        cls = kappa_cls(p, 3 * nside - 1, *nz)
        kappa = lognormal_maps(cls, lognormal_shifts(p, *nz), nside, 7).astype(float)
        return kappa.std(axis=1), skew(kappa, axis=1)

    # the same seed for every cosmology: the differences are not sample variance
    std_lo_om, sk_lo_om = stats(0.10, 0.84)
    std_hi_om, sk_hi_om = stats(0.50, 0.84)
    std_lo_s8, sk_lo_s8 = stats(0.26, 0.60)
    std_hi_s8, sk_hi_s8 = stats(0.26, 1.10)
    assert np.all(std_hi_om > 1.8 * std_lo_om)
    assert np.all(std_hi_s8 > 1.6 * std_lo_s8)
    assert np.all(sk_hi_s8 > 1.5 * sk_lo_s8)
    for sk in (sk_lo_om, sk_hi_om, sk_lo_s8, sk_hi_s8):
        assert np.all(sk > 0)
    # skewness depends much less on Om than on s8: the parameters are partly separable
    om_effect = np.abs(np.log(sk_hi_om / sk_lo_om))
    s8_effect = np.log(sk_hi_s8 / sk_lo_s8)
    assert np.all(om_effect < 0.5 * s8_effect)


# ---------------------------------------------------------------------------------------------
# argument checks
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n_cosmologies": 0}, "n_cosmologies"),
        ({"n_cosmologies": 2.0}, "n_cosmologies"),
        ({"n_cosmologies": True}, "n_cosmologies"),
        ({"n_perms": 0}, "n_perms"),
        ({"nside": 48}, "nside"),
        ({"nside": 0}, "nside"),
        ({"seed": -1}, "seed"),
        ({"vary": ("Om",)}, "vary"),
    ],
)
def test_simulate_grid_rejects_bad_arguments(tmp_path: Path, kwargs: dict, name: str) -> None:
    args = {"n_cosmologies": 1, "n_perms": 1, "nside": 8, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=name):
        simulate_grid(tmp_path / "out", progress=False, **args)
    assert not (tmp_path / "out").exists()


def test_out_root_must_be_a_folder(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ValueError, match="out_root"):
        _simulate(path, 1, 1, 8, 0, progress=False)


def test_other_functions_reject_bad_arguments(nz: tuple) -> None:
    z, n_z = nz
    cls = kappa_cls(FIDUCIAL, 23, z, n_z)
    shifts = lognormal_shifts(FIDUCIAL, z, n_z)
    with pytest.raises(ValueError, match=r"\bn must"):
        draw_cosmologies(0, 1)
    with pytest.raises(ValueError, match="n_z"):
        redshift_bins(n_z=4)
    with pytest.raises(ValueError, match="params"):
        kappa_cls({"Om": 0.3}, 23, z, n_z)
    with pytest.raises(ValueError, match="lmax"):
        kappa_cls(FIDUCIAL, 0, z, n_z)
    with pytest.raises(ValueError, match="nz"):
        kappa_cls(FIDUCIAL, 23, z, n_z[:, :-1])
    with pytest.raises(ValueError, match="shifts"):
        lognormal_maps(cls, shifts[:3], 8, 0)
    with pytest.raises(ValueError, match="shifts"):
        lognormal_maps(cls, -shifts, 8, 0)
    with pytest.raises(ValueError, match="shifts"):
        lognormal_maps(cls, shifts * 1e-3, 8, 0)  # ξ_κ/λ² ≤ −1 somewhere
    with pytest.raises(ValueError, match="nside"):
        lognormal_maps(cls, shifts, 12, 0)
    with pytest.raises(ValueError, match="rng"):
        lognormal_maps(cls, shifts, 8, None)
    with pytest.raises(ValueError, match="cls"):
        lognormal_maps(cls[0], shifts, 8, 0)
