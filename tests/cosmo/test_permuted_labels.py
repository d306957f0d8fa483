"""The permuted-label null of preprocess: training cosmologies swap targets, val/test do not."""

import numpy as np
import pytest

from sop_cosmo.cli import main
from sop_cosmo.cosmo.config import SPLITS
from sop_cosmo.cosmo.contracts.cosmogrid import cosmo_id, find_maps
from sop_cosmo.cosmo.maths.sky import label_permutation, split_by_cosmology
from sop_cosmo.cosmo.stages.preprocess import gather, preprocess
from tests.cosmo.test_chunks import _contents
from tests.cosmo.tree import make_tree

SETTINGS = dict(patch_size=8, noise="des-y3", seed=5, fractions=(0.6, 0.2, 0.2))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("tree")
    make_tree(root, n_cosmo=10, n_perms=2, nside=16)
    return root


def test_label_permutation_is_a_seeded_derangement_of_the_training_cosmologies():
    split_of = split_by_cosmology(range(1, 21), (0.6, 0.2, 0.2), seed=0)
    train = {c for c, s in split_of.items() if s == "train"}
    drawn = []
    for seed in range(20):
        source = label_permutation(split_of, seed)
        assert set(source) == set(source.values()) == train  # a permutation of train only
        assert all(c != s for c, s in source.items())  # nobody keeps its own labels
        assert source == label_permutation(split_of, seed)  # the seed fixes it
        drawn.append(tuple(sorted(source.items())))
    assert len(set(drawn)) == 20  # and different seeds draw different ones
    one = {1: "train", 2: "val", 3: "test"}
    with pytest.raises(ValueError, match=r"permute_labels: 1 training cosmology"):
        label_permutation(one, 0)


def test_preprocess_gives_every_patch_of_a_training_cosmology_another_ones_targets(root, tmp_path):
    preprocess(root, tmp_path / "true", progress=False, **SETTINGS)
    args = ["preprocess", "--root", str(root), "--out", str(tmp_path / "null"), "--patch-size",
            "8", "--noise", "des-y3", "--seed", "5", "--fractions", "0.6,0.2,0.2"]  # fmt: skip
    assert main([*args, "--permute-labels", "--quiet"]) == 0
    truth = {cosmo_id(r): [r.params["Om"], r.params["s8"]] for r in find_maps(root)}
    for split in SPLITS:
        true, true_attrs = _contents(tmp_path / "true" / f"{split}.h5")
        null, attrs = _contents(tmp_path / "null" / f"{split}.h5")
        # the same patches, in the same order: only the targets may differ
        for name in ("kappa", "cosmo_id", "perm", "patch_index"):
            np.testing.assert_array_equal(null[name], true[name], err_msg=f"{split}/{name}")
        assert true_attrs["permute_labels"] is False and "label_permutation" not in true_attrs
        assert attrs["permute_labels"] is True
        rows, sources = attrs["label_permutation"]
        source = dict(zip(rows, sources, strict=True))
        ids = true["cosmo_id"]
        if split != "train":  # val and test keep their true targets
            np.testing.assert_array_equal(null["params"], true["params"])
            assert not set(ids.tolist()) & set(source)
            continue
        assert set(source) == set(ids.tolist()) and len(source) >= 2
        for cid in np.unique(ids):
            own = null["params"][ids == cid]
            assert (own == own[0]).all()  # every patch of the cosmology: one label
            np.testing.assert_allclose(own[0], truth[source[cid]], rtol=1e-6)
            assert source[cid] != cid and not np.allclose(own[0], truth[cid])
        # the same multiset of targets: the constant predictor does not move
        mean = {k: d["params"].astype(np.float64).mean(0) for k, d in (("n", null), ("t", true))}
        np.testing.assert_allclose(mean["n"], mean["t"], rtol=1e-12)


def test_the_permutation_is_the_same_whatever_the_chunking(root, tmp_path):
    preprocess(root, tmp_path / "one", progress=False, permute_labels=True, **SETTINGS)
    dirs = [tmp_path / f"chunk{i}" for i in range(2)]
    for i, d in enumerate(dirs):
        preprocess(root, d, chunk=i, chunks=2, progress=False, permute_labels=True, **SETTINGS)
    gather(dirs, tmp_path / "two", progress=False)
    for split in SPLITS:
        want, want_attrs = _contents(tmp_path / "one" / f"{split}.h5")
        got, got_attrs = _contents(tmp_path / "two" / f"{split}.h5")
        assert got_attrs == want_attrs and got_attrs["permute_labels"] is True
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{split}/{name}")
