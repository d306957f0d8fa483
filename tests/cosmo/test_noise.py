"""σ_noise per bin: the analytic smoothed shape noise, the training ensemble, the file attribute."""

import h5py
import numpy as np
import pytest

from sop_cosmo.cosmo.config import SPLITS
from sop_cosmo.cosmo.maths.noise import (
    ensemble_sigma,
    pixel_noise_sigma,
    reference_rows,
    shape_noise_sigma,
    sigma_noise,
)
from sop_cosmo.cosmo.maths.sky import add_shape_noise, smooth
from sop_cosmo.cosmo.stages.preprocess import gather, preprocess
from tests.cosmo.tree import make_tree


@pytest.mark.parametrize(("nside", "fwhm"), [(32, 0.0), (32, 60.0), (64, 120.0)])
def test_shape_noise_sigma_is_the_std_of_a_smoothed_noise_map(nside, fwhm):
    rng = np.random.default_rng(0)
    noise = smooth(add_shape_noise(np.zeros((1, 12 * nside**2), "f4"), "des-y3", rng, nside), fwhm)
    sigma = shape_noise_sigma("des-y3", nside, fwhm, 3)
    assert sigma.shape == (3,) and np.all(sigma == sigma[0])
    assert noise.std() == pytest.approx(sigma[0], rel=0.03)
    if fwhm:  # smoothing lowers the noise
        assert sigma[0] < pixel_noise_sigma("des-y3", nside)


def test_lsst_y10_noise_is_half_of_des_y3():
    # 6.75 against 1.67 galaxies per arcmin² per bin at the same shape dispersion
    ratio = pixel_noise_sigma("lsst-y10", 64) / pixel_noise_sigma("des-y3", 64)
    assert ratio == pytest.approx((1.67 / 6.75) ** 0.5)


def test_no_noise_model_has_no_shape_noise_and_unknown_models_are_named():
    assert pixel_noise_sigma("none", 64) == 0.0
    with pytest.raises(ValueError, match="noise"):
        pixel_noise_sigma("lsst", 64)
    with pytest.raises(ValueError, match="reference"):
        sigma_noise("none", 64, 0.0, 2)


def test_ensemble_sigma_pools_every_pixel_of_every_block():
    rng = np.random.default_rng(1)
    blocks = [rng.normal(0.1, s, (5, 2, 4, 4)) * np.array([1, 3])[:, None, None] for s in (1, 2)]
    want = np.concatenate(blocks).transpose(1, 0, 2, 3).reshape(2, -1).std(1)
    np.testing.assert_allclose(ensemble_sigma(iter(blocks)), want, rtol=1e-12)
    with pytest.raises(ValueError, match="no pixels"):
        ensemble_sigma([])
    with pytest.raises(ValueError, match="constant"):
        ensemble_sigma([np.ones((2, 1, 3, 3))])


def test_reference_rows_are_training_maps_spread_evenly():
    splits = ["train", "val", "train", "test"] + ["train"] * 96
    rows = reference_rows(splits, max_maps=10)
    assert len(rows) == 10 and all(splits[i] == "train" for i in rows)
    assert rows[0] == 0 and rows[-1] == 99
    assert reference_rows(["val", "train"]).tolist() == [1]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    make_tree(root, n_cosmo=6, n_perms=2, nside=16)
    return root


def _sigma(path):
    with h5py.File(path) as f:
        return np.asarray(f.attrs["sigma_noise"]), f["kappa"][()]


def test_preprocess_records_sigma_noise_per_bin(root, tmp_path):
    preprocess(root, tmp_path / "noisy", patch_size=8, noise="des-y3", smoothing_arcmin=200.0,
               bins=(1, 3), progress=False)  # fmt: skip
    for split in SPLITS:
        sigma, _ = _sigma(tmp_path / "noisy" / f"{split}.h5")
        np.testing.assert_allclose(sigma, shape_noise_sigma("des-y3", 16, 200.0, 2))
    # Without noise: the ensemble σ of the training patches (all 8 training maps: < 32).
    preprocess(root, tmp_path / "clean", patch_size=8, bins=(1, 3), progress=False)
    sigma, train = _sigma(tmp_path / "clean" / "train.h5")
    want = train.astype(np.float64).transpose(1, 0, 2, 3).reshape(2, -1).std(1)
    np.testing.assert_allclose(sigma, want, rtol=1e-6)
    np.testing.assert_array_equal(_sigma(tmp_path / "clean" / "test.h5")[0], sigma)


def test_chunks_without_noise_record_the_same_sigma_and_gather(root, tmp_path):
    dirs = [tmp_path / f"c{i}" for i in range(3)]
    for i, d in enumerate(dirs):
        preprocess(root, d, patch_size=8, chunk=i, chunks=3, progress=False)
    sigmas = [_sigma(d / "train.h5")[0] for d in dirs]
    assert all(np.array_equal(s, sigmas[0]) for s in sigmas)
    gather(dirs, tmp_path / "all", progress=False)
    preprocess(root, tmp_path / "one", patch_size=8, progress=False)
    np.testing.assert_array_equal(_sigma(tmp_path / "all" / "val.h5")[0],
                                  _sigma(tmp_path / "one" / "val.h5")[0])  # fmt: skip
