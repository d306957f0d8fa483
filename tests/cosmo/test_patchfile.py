"""The patch-file contract: one writer (one-shot and streaming), one reader."""

import h5py
import numpy as np
import pytest

from sop_cosmo.cosmo.contracts.patchfile import (
    REQUIRED_ATTRS,
    PatchFileWriter,
    open_patch_file,
    read_attrs,
    read_patches,
    write_patch_file,
)

ATTRS = {"pixel_arcmin": 2.0, "patch_size": 4, "nside": 0, "bins": [1, 2],
         "smoothing_arcmin": 0.0, "noise": "none", "source": "simulated"}  # fmt: skip


def _rows(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2, 4, 4)), rng.uniform(size=(n, 2)), np.arange(n) + 10


def test_one_shot_round_trip_with_extras(tmp_path):
    kappa, params, ids = _rows(5)
    path = write_patch_file(
        tmp_path / "a" / "train.h5", kappa=kappa, params=params, cosmo_id=ids,
        param_names=["Om", "s8"], attrs={**ATTRS, "spec": "{}"}, extra={"u": params[:, :1]},
    )  # fmt: skip
    assert sorted(p.name for p in path.parent.iterdir()) == ["train.h5"]  # no temporary left
    data = read_patches(path)
    assert data.kappa.dtype == np.float32 and data.params.dtype == np.float32
    assert data.cosmo_id.dtype == np.int64 and len(data) == 5
    np.testing.assert_array_equal(data.kappa, kappa.astype(np.float32))
    assert data.param_names == ["Om", "s8"]
    assert data.attrs == read_attrs(path) and data.attrs["bins"] == [1, 2]
    assert data.attrs["spec"] == "{}" and set(REQUIRED_ATTRS) <= set(data.attrs)
    some = read_patches(path, np.array([1, 3]))
    np.testing.assert_array_equal(some.cosmo_id, [11, 13])
    np.testing.assert_array_equal(some.kappa, data.kappa[[1, 3]])
    with h5py.File(path) as f:
        np.testing.assert_array_equal(f["u"][()], params[:, :1])
    with pytest.raises(ValueError, match="sorted"):
        read_patches(path, [3, 1])


def test_streaming_writer_matches_the_one_shot_writer(tmp_path):
    kappa, params, ids = _rows(6)
    write_patch_file(tmp_path / "a.h5", kappa=kappa, params=params, cosmo_id=ids,
                     param_names=["Om", "s8"], attrs=ATTRS)  # fmt: skip
    extra = {"perm": "i8", "patch_index": "i8"}
    with PatchFileWriter(tmp_path / "b.h5", n_bins=2, patch_size=4, param_names=["Om", "s8"],
                         attrs=ATTRS, extra=extra) as w:  # fmt: skip
        assert not (tmp_path / "b.h5").exists()  # appears on close only
        for s in (slice(0, 2), slice(2, 6)):
            n = s.stop - s.start
            w.append(kappa[s], params[s], ids[s], perm=0, patch_index=np.arange(n))
        assert len(w) == 6
    a, b = read_patches(tmp_path / "a.h5"), read_patches(tmp_path / "b.h5")
    for name in ("kappa", "params", "cosmo_id", "param_names", "attrs"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    with h5py.File(tmp_path / "b.h5") as f:
        assert f["kappa"].chunks == (1, 2, 4, 4)
        np.testing.assert_array_equal(f["patch_index"][()], [0, 1, 0, 1, 2, 3])


def test_streaming_writer_discards_the_file_on_error(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with PatchFileWriter(tmp_path / "c.h5", n_bins=2, patch_size=4, param_names=["Om", "s8"],
                             attrs=ATTRS) as w:  # fmt: skip
            w.append(*_rows(2))
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_bad_input_naming_the_file(tmp_path):
    kappa, params, ids = _rows(3)
    base = {"kappa": kappa, "params": params, "cosmo_id": ids, "param_names": ["Om", "s8"]}
    bad = {k: v for k, v in ATTRS.items() if k != "noise"}
    with pytest.raises(ValueError, match=r"x\.h5: attrs lack \['noise'\]"):
        write_patch_file(tmp_path / "x.h5", **base, attrs=bad)
    with pytest.raises(ValueError, match=r"x\.h5: kappa has 2 bins of 4×4"):
        write_patch_file(tmp_path / "x.h5", **base, attrs={**ATTRS, "bins": [1]})
    with pytest.raises(ValueError, match="params must be"):
        write_patch_file(tmp_path / "x.h5", **{**base, "param_names": ["Om"]}, attrs=ATTRS)
    with pytest.raises(ValueError, match="extra datasets"):
        with PatchFileWriter(tmp_path / "y.h5", n_bins=2, patch_size=4, param_names=["Om", "s8"],
                             attrs=ATTRS) as w:  # fmt: skip
            w.append(kappa, params, ids, perm=0)
    assert list(tmp_path.iterdir()) == []


def test_reader_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.h5: no such patch file"):
        open_patch_file(tmp_path / "nope.h5")
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["kappa"] = np.zeros((1, 2, 4, 4), "f4")
    with pytest.raises(ValueError, match=r"bad\.h5: no dataset 'params'"):
        read_patches(tmp_path / "bad.h5")
