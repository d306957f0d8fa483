"""Streamed patch data (sop_cosmo.cosmo.dataset.StreamedPatches, contracts.patchrows.PatchRows):
the same values, statistics and training as the in-memory path, with several files per split."""

import h5py
import numpy as np
import pytest
import torch

from sop_cosmo.cosmo import dataset as dataset_mod
from sop_cosmo.cosmo.config import TrainConfig
from sop_cosmo.cosmo.contracts.patchrows import PatchRows
from sop_cosmo.cosmo.dataset import StreamedPatches, load_split
from sop_cosmo.cosmo.runtime import EpochBatches, batch_loader, runtime_settings
from sop_cosmo.cosmo.stages.train import train
from tests.cosmo.test_data import make_patch_file


@pytest.fixture
def parts(tmp_path):
    """One train split in three files of 40, 7 and 53 rows."""
    return [
        make_patch_file(tmp_path / "a.h5", 40, seed=0),
        make_patch_file(tmp_path / "b.h5", 7, seed=1, first_id=40),
        make_patch_file(tmp_path / "c.h5", 53, seed=2, first_id=47),
    ]


def _raw(paths, name="kappa"):
    out = []
    for p in paths:
        with h5py.File(p) as f:
            out.append(f[name][...])
    return np.concatenate(out)


def test_streamed_statistics_equal_the_whole_array_ones(parts, monkeypatch):
    # Small blocks (3 rows of 2·16·16 floats), so the one-pass merge runs over many of them.
    monkeypatch.setattr(dataset_mod, "_BLOCK_BYTES", 3 * 4 * 2 * 16 * 16)
    data = load_split(parts, "cnn")
    assert isinstance(data.x, StreamedPatches) and data.x.shape == (100, 2, 16, 16)
    raw = _raw(parts).astype(np.float64)
    np.testing.assert_allclose(data.norm.input_mean, raw.mean(axis=(0, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(data.norm.input_std, raw.std(axis=(0, 2, 3)), rtol=1e-12)
    params = _raw(parts, "params").astype(np.float64)
    np.testing.assert_allclose(data.norm.target_mean, params.mean(0), rtol=1e-12)
    # The in-memory path reduces the same blocks: the same statistics, bit for bit.
    assert load_split(parts, "cnn", in_memory=True).norm == data.norm
    assert data.cosmo_id.tolist() == list(range(100)) and data.paths == tuple(parts)


def test_streamed_rows_are_the_in_memory_rows_bit_for_bit(parts):
    streamed = load_split(parts, "cnn")
    memory = load_split(parts, "cnn", in_memory=True)
    assert isinstance(memory.x, torch.Tensor)
    assert torch.equal(streamed.x[:], memory.x)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, 100, 64)  # any order, repeats, across the three files
    assert torch.equal(streamed.x[idx], memory.x[idx])
    assert torch.equal(streamed.x[torch.from_numpy(idx)], memory.x[idx])
    assert torch.equal(streamed.x[35:60:3], memory.x[35:60:3])
    assert torch.equal(streamed.x[-1], memory.x[-1]) and streamed.x[5:5].shape == (0, 2, 16, 16)
    with pytest.raises(IndexError, match="out of range"):
        streamed.x[[100]]


def test_files_of_one_split_must_agree(parts, tmp_path):
    other = make_patch_file(tmp_path / "d.h5", 8, bins=3)
    with pytest.raises(ValueError, match=r"d\.h5: bins is \[1, 2, 3\], but .*a\.h5 has \[1, 2\]"):
        load_split([parts[0], other], "cnn")
    with h5py.File(other, "a") as f:
        f["params"].attrs["names"] = ["Om", "w0"]
    with pytest.raises(ValueError, match=r"d\.h5: parameters is \['Om', 'w0'\]"):
        PatchRows([parts[0], other])


def test_non_finite_rows_are_named_when_first_read(parts):
    with h5py.File(parts[2], "a") as f:
        f["kappa"][5, 1, 2, 3] = np.inf
    # The train split: the statistics pass finds it at once.
    with pytest.raises(ValueError, match=r"c\.h5: non-finite values in 'kappa'"):
        load_split(parts, "cnn")
    # A split read with given statistics: the batch that holds the row.
    norm = load_split(parts[:2], "cnn").norm
    val = load_split(parts, "cnn", norm=norm)
    assert val.x[:40].shape[0] == 40  # rows before it read fine
    with pytest.raises(ValueError, match=r"c\.h5: non-finite values in 'kappa'"):
        val.x[[3, 52]]


def test_the_batch_loader_streams_in_worker_processes_in_the_seeded_order(parts):
    data = load_split(parts, "cnn")
    memory = load_split(parts, "cnn", in_memory=True)
    cpu = runtime_settings(torch.device("cpu"))

    def batches(x, seed, workers):
        sampler = EpochBatches(len(data), 16, seed, 0)
        return [xb for xb, _ in batch_loader(x, data.y, sampler, cpu, workers)]

    streamed = batches(data.x, 3, 1)  # one worker: opens its own file handles
    assert len(streamed) == 6
    assert all(torch.equal(a, b) for a, b in zip(streamed, batches(memory.x, 3, 0), strict=True))
    assert not torch.equal(streamed[0], batches(data.x, 4, 0)[0])  # another seed, another order


def test_streamed_training_equals_in_memory_training(tmp_path):
    train_path = make_patch_file(tmp_path / "train.h5", 48, seed=0)
    val_path = make_patch_file(tmp_path / "val.h5", 16, seed=1, first_id=100)
    config = {"epochs": 2, "batch_size": 8, "device": "cpu", "checkpoint_every": 0,
              "model_options": {"widths": [4], "kernel": 3, "hidden": [8]}}  # fmt: skip
    states = []
    for in_memory in (False, True):
        run = train(train_path, val_path, tmp_path / f"run_{in_memory}",
                    TrainConfig(**config, in_memory=in_memory), progress=False)  # fmt: skip
        states.append(torch.load(run, weights_only=True)["model_state"])
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
