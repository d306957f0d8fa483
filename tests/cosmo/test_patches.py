import h5py
import healpy as hp
import numpy as np
import pytest

from sop_cosmo.cosmo.contracts.cosmogrid import find_maps, read_map
from sop_cosmo.cosmo.maths.sky import (
    add_shape_noise,
    patch_geometry,
    smooth,
    split_by_cosmology,
)
from sop_cosmo.cosmo.stages.preprocess import preprocess
from tests.cosmo.tree import make_tree


def _direction_map(nside, axis):
    return np.asarray(hp.pix2vec(nside, np.arange(hp.nside2npix(nside)))[axis], dtype="f4")


def test_centre_pixel_and_orientation():
    geo = patch_geometry(64, 9, pixel_arcmin=2 * hp.nside2resol(64, arcmin=True))
    # A centre is a corner of four finer pixels (HEALPix nesting): any of them is right.
    got = np.stack(hp.pix2vec(64, geo.pixels[:, 4, 4]), -1)
    want = hp.ang2vec(geo.centres[:, 0], geo.centres[:, 1])
    dist = np.degrees(np.arccos(np.clip((got * want).sum(-1), -1, 1))) * 60
    assert dist.max() < hp.nside2resol(64, arcmin=True)
    z = _direction_map(64, 2)[geo.pixels]  # (n, P, P) of cos(theta)
    equatorial = np.abs(np.cos(geo.centres[:, 0])) < 0.3
    # North is up: z falls from the first row to the last one.
    assert (z[equatorial, 0, 4] > z[equatorial, -1, 4]).all()


def test_pixel_spacing_matches_the_requested_scale():
    nside, scale = 256, 4 * hp.nside2resol(256, arcmin=True)  # coarse, so no repeated pixels
    geo = patch_geometry(nside, 16, pixel_arcmin=scale, centres_nside=2)
    vec = np.stack(hp.pix2vec(nside, geo.pixels), -1)  # (n, P, P, 3)
    step = np.degrees(np.arccos(np.clip((vec[:, :, 1:] * vec[:, :, :-1]).sum(-1), -1, 1))) * 60
    # HEALPix pixels quantise positions; the mean step is the requested scale.
    assert step.mean() == pytest.approx(scale, rel=0.05)


def test_default_centre_grid_keeps_patches_apart():
    geo = patch_geometry(64, 16)
    side = np.radians(16 * geo.pixel_arcmin / 60)
    assert hp.nside2resol(geo.centres_nside) >= side
    assert hp.nside2resol(2 * geo.centres_nside) < side
    assert geo.pixels.shape == (12 * geo.centres_nside**2, 16, 16)


def test_shape_noise_level_and_smoothing():
    rng = np.random.default_rng(0)
    nside = 64
    noisy = add_shape_noise(np.zeros((1, hp.nside2npix(nside)), "f4"), "des-y3", rng, nside)
    area = hp.nside2pixarea(nside, degrees=True) * 3600
    assert noisy.std() == pytest.approx(0.26 / np.sqrt(1.67 * area), rel=0.02)
    smoothed = smooth(noisy, 3 * hp.nside2resol(nside, arcmin=True))
    assert smoothed.std() < 0.5 * noisy.std()
    assert smooth(noisy, 0) is noisy
    with pytest.raises(ValueError, match="noise"):
        add_shape_noise(noisy, "lsst", rng, nside)


def test_split_is_by_cosmology_and_seeded():
    split = split_by_cosmology(range(1, 21), seed=3)
    assert sorted(split.values()).count("train") == 16
    assert split == split_by_cosmology(range(20, 0, -1), seed=3)
    assert split != split_by_cosmology(range(1, 21), seed=4)
    with pytest.raises(ValueError, match="at least 3"):
        split_by_cosmology([1, 1, 2])


@pytest.fixture
def tree(tmp_path):
    cosmologies = make_tree(tmp_path / "root", n_cosmo=6, n_perms=2, nside=16)
    return tmp_path / "root", cosmologies


def test_preprocess_writes_the_contract(tree, tmp_path):
    root, cosmologies = tree
    counts = preprocess(root, tmp_path / "out", patch_size=8, seed=1, progress=False)
    geo = patch_geometry(16, 8)
    assert sum(counts.values()) == 12 * geo.n_patches
    seen = {}
    for split in ("train", "val", "test"):
        with h5py.File(tmp_path / "out" / f"{split}.h5") as f:
            n = counts[split]
            assert f["kappa"].dtype == np.float32 and f["kappa"].shape == (n, 4, 8, 8)
            assert f["params"].dtype == np.float32 and f["params"].shape == (n, 2)
            assert list(f["params"].attrs["names"]) == ["Om", "s8"]
            assert f["cosmo_id"].dtype == np.int64 and f["cosmo_id"].shape == (n,)
            for key in ("pixel_arcmin", "patch_size", "nside", "bins", "smoothing_arcmin"):
                assert key in f.attrs
            assert f.attrs["noise"] == "none" and f.attrs["source"] == "cosmogrid"
            assert list(f.attrs["bins"]) == [1, 2, 3, 4] and f.attrs["nside"] == 16
            ids, params = f["cosmo_id"][()], f["params"][()]
        for cid in np.unique(ids):
            name = f"cosmo_{cid:06d}"
            expected = [cosmologies[name]["Om"], cosmologies[name]["s8"]]
            want = np.tile(expected, (2 * geo.n_patches, 1))
            np.testing.assert_allclose(params[ids == cid], want, rtol=1e-6)
            assert cid not in seen, "a cosmology appears in two splits"
            seen[int(cid)] = split
    assert len(seen) == 6
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def test_patches_are_the_gathered_physical_map_values(tree, tmp_path):
    root, _ = tree
    preprocess(root, tmp_path / "out", patch_size=8, bins=(2,), seed=1, progress=False)
    record = find_maps(root)[0]
    expected = patch_geometry(16, 8).cut(read_map(record.path, bins=(2,)))
    for split in ("train", "val", "test"):
        with h5py.File(tmp_path / "out" / f"{split}.h5") as f:
            rows = (f["cosmo_id"][()] == 1) & (f["perm"][()] == 0)
            if rows.any():
                np.testing.assert_array_equal(f["kappa"][rows], expected)  # not standardised


def test_noise_smoothing_and_augmentation_are_seeded(tree, tmp_path):
    root, _ = tree
    kwargs = dict(patch_size=8, noise="des-y3", smoothing_arcmin=300.0, augment=True,
                  progress=False)  # fmt: skip
    preprocess(root, tmp_path / "a", seed=5, **kwargs)
    preprocess(root, tmp_path / "b", seed=5, **kwargs)
    preprocess(root, tmp_path / "c", patch_size=8, seed=5, progress=False)
    with h5py.File(tmp_path / "a/train.h5") as a, h5py.File(tmp_path / "b/train.h5") as b:
        np.testing.assert_array_equal(a["kappa"][()], b["kappa"][()])
        assert a.attrs["noise"] == "des-y3" and a.attrs["smoothing_arcmin"] == 300.0
        with h5py.File(tmp_path / "c/train.h5") as c:
            assert not np.array_equal(a["kappa"][()], c["kappa"][()])


def test_bad_settings_are_named(tree, tmp_path):
    root, _ = tree
    with pytest.raises(ValueError, match="noise"):
        preprocess(root, tmp_path / "o", patch_size=8, noise="lsst", progress=False)
    with pytest.raises(ValueError, match=r"params: unknown 'Omega_m'; allowed: .*Om"):
        preprocess(root, tmp_path / "o", patch_size=8, params=("Omega_m",), progress=False)
    with pytest.raises(ValueError, match="patch_size"):
        preprocess(root, tmp_path / "o", patch_size=1, progress=False)
    assert not (tmp_path / "o" / "train.h5").exists()  # nothing half-written


def test_cli_preprocess(tree, tmp_path, capsys):
    from sop_cosmo.cli import main

    root, _ = tree
    out = tmp_path / "cli"
    args = ["preprocess", "--root", str(root), "--out", str(out), "--patch-size", "8"]
    assert main([*args, "--bins", "1,3", "--quiet"]) == 0
    with h5py.File(out / "test.h5") as f:
        assert f["kappa"].shape[1] == 2 and list(f.attrs["bins"]) == [1, 3]
    assert "train" in capsys.readouterr().out
    assert main([*args, "--bins", "1,7", "--quiet"]) == 2
    assert "bin 7 was asked for" in capsys.readouterr().err
