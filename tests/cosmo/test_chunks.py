"""Scattered preprocessing: chunks by cosmology, one job each, then the gather."""

import h5py
import numpy as np
import pytest

from sop_cosmo.cli import main
from sop_cosmo.cosmo.config import SPLITS
from sop_cosmo.cosmo.contracts.cosmogrid import CosmoGridError, cosmo_id, find_maps
from sop_cosmo.cosmo.stages.preprocess import chunk_of, gather, preprocess
from tests.cosmo.tree import make_tree

# Noise, smoothing and augmentation draw random numbers: their streams must not depend on
# which job cuts a map.
SETTINGS = dict(patch_size=8, noise="des-y3", smoothing_arcmin=200.0, augment=True, seed=3)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    make_tree(root, n_cosmo=6, n_perms=2, nside=16)
    return root


def _scatter(root, out, chunks, **kw):
    dirs = [out / f"chunk{i}" for i in range(chunks)]
    for i, d in enumerate(dirs):
        preprocess(root, d, chunk=i, chunks=chunks, progress=False, **{**SETTINGS, **kw})
    return dirs


def _contents(path):
    with h5py.File(path) as f:
        data = {name: f[name][()] for name in f}
        return data, {k: np.asarray(v).tolist() for k, v in f.attrs.items()}


def test_chunk_of_cuts_contiguous_near_equal_runs():
    assert chunk_of([5, 5, 7, 9, 9, 2, 4], 3) == {5: 0, 7: 0, 9: 1, 2: 1, 4: 2}
    assert set(chunk_of(range(10), 1).values()) == {0}
    with pytest.raises(ValueError, match=r"chunks: expected 1 … 3"):
        chunk_of([1, 2, 3], 4)


def test_four_chunks_gather_to_the_patches_of_one_job(root, tmp_path):
    preprocess(root, tmp_path / "one", progress=False, **SETTINGS)
    dirs = _scatter(root, tmp_path, 4)
    ids = [cosmo_id(r) for r in find_maps(root)]
    for i, d in enumerate(dirs):  # each chunk holds its own cosmologies only
        with h5py.File(d / "train.h5") as f:
            assert f.attrs["chunk"] == i and f.attrs["chunks"] == 4
            assert {chunk_of(ids, 4)[c] for c in f["cosmo_id"][()]} <= {i}
    counts = gather(dirs, tmp_path / "four", progress=False)
    for split in SPLITS:
        want, want_attrs = _contents(tmp_path / "one" / f"{split}.h5")
        got, got_attrs = _contents(tmp_path / "four" / f"{split}.h5")
        assert got_attrs == want_attrs and "chunk" not in got_attrs
        assert sorted(got) == sorted(want) == ["cosmo_id", "kappa", "params", "patch_index", "perm"]
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{split}/{name}")
        assert counts[split] == len(want["kappa"]) > 0


def test_gather_refuses_missing_repeated_and_foreign_chunks(root, tmp_path):
    dirs = _scatter(root, tmp_path, 3)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"chunk\(s\) \[1\] missing \(have \[0, 2\]\)"):
        gather([dirs[0], dirs[2]], out, progress=False)
    with pytest.raises(ValueError, match=r"chunk 2 given twice"):
        gather([*dirs, dirs[2]], out, progress=False)
    other = tmp_path / "other"
    preprocess(root, other, chunk=1, chunks=3, progress=False, **{**SETTINGS, "seed": 4})
    with pytest.raises(ValueError, match=r"other/train\.h5: attributes \['seed'\] differ"):
        gather([dirs[0], other, dirs[2]], out, progress=False)
    (dirs[1] / "val.h5").unlink()
    with pytest.raises(FileNotFoundError, match=r"chunk1/val\.h5: missing"):
        gather(dirs, out, progress=False)
    assert not out.exists() or not list(out.iterdir())  # nothing half-written


def test_a_corrupt_map_fails_its_chunk_naming_the_file(tmp_path):
    root = tmp_path / "tree"
    make_tree(root, n_cosmo=4, n_perms=1, nside=8)
    bad = find_maps(root)[-1].path  # in the last of two chunks
    bad.write_bytes(bad.read_bytes()[:200])  # truncated, as by a failed copy
    preprocess(root, tmp_path / "c0", chunk=0, chunks=2, patch_size=8, progress=False)
    with pytest.raises(CosmoGridError, match=rf"{bad}: cannot be opened as HDF5"):
        preprocess(root, tmp_path / "c1", chunk=1, chunks=2, patch_size=8, progress=False)
    assert not (tmp_path / "c1").exists() or not list((tmp_path / "c1").glob("*.h5"))


def test_cli_scatter_and_gather(root, tmp_path, capsys):
    base = ["preprocess", "--root", str(root), "--patch-size", "8", "--chunks", "2", "--quiet"]
    for i in (0, 1):
        assert main([*base, "--out", str(tmp_path / f"c{i}"), "--chunk", str(i)]) == 0
    assert "(chunk 1 of 2)" in capsys.readouterr().out
    assert main(["gather", "--out", str(tmp_path / "all"), str(tmp_path / "c0"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chunk(s) [1] missing" in err
    dirs = [str(tmp_path / "c0"), str(tmp_path / "c1")]
    assert main(["gather", "--out", str(tmp_path / "all"), *dirs, "--quiet"]) == 0
    assert "from 2 chunks" in capsys.readouterr().out
    assert main([*base, "--out", str(tmp_path / "c9"), "--chunk", "2"]) == 2
    assert "chunk: expected 0 … 1" in capsys.readouterr().err
