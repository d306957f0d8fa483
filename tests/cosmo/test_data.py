"""Reading patch files into standardised tensors (sop_cosmo.cosmo.dataset)."""

import io
import json

import h5py
import numpy as np
import pytest
import torch

from sop_cosmo.cosmo.contracts.patchfile import read_attrs
from sop_cosmo.cosmo.dataset import Normalization, load_split
from tests.cosmo.tree import write_patches

ATTRS = {
    "pixel_arcmin": 2.0,
    "noise": "none",
    "nside": 64,
    "smoothing_arcmin": 0.0,
    "source": "simulated",
}


def make_patch_file(path, n=64, *, bins=2, size=16, seed=0, first_id=0, om=None):
    """A tiny patch file whose κ std grows with σ8 and mean with Ωm (learnable)."""
    rng = np.random.default_rng(seed)
    om = rng.uniform(0.2, 0.4, n) if om is None else np.full(n, om)
    s8 = rng.uniform(0.6, 1.0, n)
    noise = rng.standard_normal((n, bins, size, size))
    kappa = 0.01 * s8[:, None, None, None] * noise + 0.005 * om[:, None, None, None]
    kappa[:, -1] *= 3  # bins with different scales: per-bin standardisation matters
    params = np.stack([om, s8], 1).astype("f4")
    ids = np.arange(first_id, first_id + n, dtype="i8")
    return write_patches(path, kappa.astype("f4"), params, ids, names=["Om", "s8"], **ATTRS)


@pytest.fixture
def split_files(tmp_path):
    return (
        make_patch_file(tmp_path / "train.h5", 64, seed=0),
        make_patch_file(tmp_path / "val.h5", 32, seed=1, first_id=100),
    )


@pytest.mark.parametrize("in_memory", [False, True], ids=["streamed", "in-memory"])
def test_pixels_standardised_per_bin_with_train_statistics(split_files, in_memory):
    train_path, val_path = split_files
    train = load_split(train_path, "cnn", in_memory=in_memory)
    assert train.x.dtype == torch.float32 and train.x.shape == (64, 2, 16, 16)
    bin_mean = train.x[:].double().mean(dim=(0, 2, 3))
    bin_std = train.x[:].double().std(dim=(0, 2, 3), correction=0)
    torch.testing.assert_close(bin_mean, torch.zeros(2, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(bin_std, torch.ones(2, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.y.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.y.std(0, correction=0), torch.ones(2), atol=1e-5, rtol=0)

    val = load_split(val_path, "cnn", norm=train.norm, in_memory=in_memory)
    assert val.norm is train.norm
    with h5py.File(val_path) as f:
        raw, params = f["kappa"][...].astype("f8"), f["params"][...].astype("f8")
    mean, std = np.array(train.norm.input_mean), np.array(train.norm.input_std)
    want = (raw - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(val.x[:].numpy(), want, rtol=1e-5, atol=1e-5)
    # the val split's own statistics differ: they were not used
    assert not np.allclose(val.x[:].double().mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-3)
    np.testing.assert_allclose(val.y_phys.numpy(), params, rtol=1e-6)
    np.testing.assert_allclose(val.destandardise(val.y).numpy(), params, rtol=1e-5)
    assert val.param_names == ["Om", "s8"] and val.in_channels == 2 and val.patch_size == 16
    assert val.cosmo_id.dtype == torch.int64 and int(val.cosmo_id[0]) == 100
    assert val.attrs["bins"] == [1, 2] and val.attrs["noise"] == "none"


def test_stats_features_standardised_per_feature(split_files):
    train_path, val_path = split_files
    train = load_split(train_path, "stats", stats_options={"ps_bins": 3})
    n_feat = train.x.shape[1]
    assert train.x.shape == (64, n_feat) and train.n_features == n_feat
    assert len(train.norm.feature_names) == n_feat and train.norm.stats_options == {"ps_bins": 3}
    varying = torch.tensor(train.norm.input_std) != 1.0  # constant features are left at 0
    torch.testing.assert_close(train.x.mean(0), torch.zeros(n_feat), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        train.x.std(0, correction=0)[varying], torch.ones(int(varying.sum())), atol=1e-4, rtol=0
    )
    val = load_split(val_path, "stats", norm=train.norm)  # reuses the stored stats_options
    assert val.x.shape == (32, n_feat)


def test_small_patches_need_fewer_power_spectrum_bins(split_files):
    with pytest.raises(ValueError, match=r"train\.h5: summary statistics failed.*ps_bins"):
        load_split(split_files[0], "stats")


def test_normalization_is_json_and_torch_serialisable(split_files):
    norm = load_split(split_files[0], "stats", stats_options={"ps_bins": 3}).norm
    assert Normalization.from_dict(json.loads(json.dumps(norm.to_dict()))) == norm
    buf = io.BytesIO()
    torch.save(norm.to_dict(), buf)
    buf.seek(0)
    assert Normalization.from_dict(torch.load(buf, weights_only=True)) == norm


def test_constant_parameter_is_harmless(tmp_path):
    data = load_split(make_patch_file(tmp_path / "train.h5", 16, om=0.3), "cnn")
    assert data.norm.target_std[0] == 1.0
    assert torch.all(data.y[:, 0] == 0)
    torch.testing.assert_close(data.destandardise(data.y)[:, 0], torch.full((16,), 0.3))


def _drop(path, what):
    with h5py.File(path, "a") as f:
        if what in f:
            del f[what]
        elif what in f.attrs:
            del f.attrs[what]
        else:
            del f["params"].attrs["names"]
    return path


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("kappa", r"train\.h5: no dataset 'kappa'; is this a patch file from `sop-cosmo"),
        ("params", r"train\.h5: no dataset 'params'"),
        ("cosmo_id", r"train\.h5: no dataset 'cosmo_id'"),
        ("pixel_arcmin", r"train\.h5: missing file attribute\(s\) \['pixel_arcmin'\]"),
        ("bins", r"train\.h5: missing file attribute\(s\) \['bins'\]"),
        ("names", r"train\.h5: dataset 'params' has no attribute 'names'"),
    ],
)
def test_schema_errors_name_the_file_and_what_is_missing(tmp_path, what, message):
    path = _drop(make_patch_file(tmp_path / "train.h5", 8), what)
    with pytest.raises(ValueError, match=message):
        load_split(path, "cnn")
    with pytest.raises(ValueError, match=message):
        read_attrs(path)


def test_shape_and_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.h5: no such patch file"):
        load_split(tmp_path / "nope.h5", "cnn")
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match=r"junk\.h5: not a readable HDF5 file"):
        load_split(tmp_path / "junk.h5", "cnn")
    path = make_patch_file(tmp_path / "train.h5", 8)
    with h5py.File(path, "a") as f:
        f.attrs["patch_size"] = 20
    with pytest.raises(ValueError, match=r"2 bins of 20×20 pixels"):
        load_split(path, "cnn")
    with pytest.raises(ValueError, match="kind: expected one of"):
        load_split(path, "vit")


def test_norm_must_fit_the_file(tmp_path):
    train = load_split(make_patch_file(tmp_path / "train.h5", 8), "cnn")
    other = make_patch_file(tmp_path / "val.h5", 8, bins=3)
    with pytest.raises(ValueError, match=r"val\.h5: 3 tomographic bins, the training split had 2"):
        load_split(other, "cnn", norm=train.norm)
    with h5py.File(other, "a") as f:
        f["params"].attrs["names"] = ["Om", "w0"]
    with pytest.raises(ValueError, match=r"parameters \['Om', 'w0'\] differ"):
        load_split(other, "cnn", norm=train.norm)
    with pytest.raises(ValueError, match="norm: computed for a 'cnn' model"):
        load_split(other, "stats", norm=train.norm)


def test_non_finite_kappa_is_rejected(tmp_path):
    path = make_patch_file(tmp_path / "train.h5", 8)
    with h5py.File(path, "a") as f:
        f["kappa"][3, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"train\.h5: non-finite values in 'kappa'"):
        load_split(path, "cnn")
