"""Every user error of ``sop-cosmo`` is exit status 2 and one line on stderr that names the input,
with no traceback and nothing left behind; ``--debug`` shows the traceback."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from sop_cosmo.cli import build_parser, main
from sop_cosmo.cosmo.contracts.checkpoint import save_checkpoint
from sop_cosmo.cosmo.contracts.patchfile import write_patch_file


def _patches(path: Path, size: int = 8) -> Path:
    attrs = {"pixel_arcmin": 1.0, "patch_size": size, "nside": 16, "bins": [1],
             "smoothing_arcmin": 0.0, "noise": "none", "source": "test"}  # fmt: skip
    rng = np.random.default_rng(0)
    return write_patch_file(
        path,
        kappa=rng.normal(size=(8, 1, size, size)),
        params=rng.uniform(size=(8, 2)),
        cosmo_id=np.arange(8),
        param_names=["Om", "s8"],
        attrs=attrs,
    )


def _checkpoint(path: Path, kind: str) -> Path:
    # Enough for the checkpoint reader; these tests never build the model.
    args = {"kind": kind, "in_channels": 1, "patch_size": 8, "n_outputs": 2,
            "n_features": None, "options": {}}  # fmt: skip
    payload = {"model_args": args, "config": {}, "norm": {}, "param_names": ["Om", "s8"],
               "model_state": {}}  # fmt: skip
    return save_checkpoint(payload, path)


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with valid inputs, a text file posing as a checkpoint, an empty folder and a
    plain file; the current directory during the test."""
    _patches(tmp_path / "train.h5")
    _patches(tmp_path / "val.h5")
    _checkpoint(tmp_path / "cnn.pt", "cnn")
    _checkpoint(tmp_path / "sop.pt", "sop")
    (tmp_path / "model.pt").write_text("not a torch file\n")
    (tmp_path / "fake.h5").write_text("not an HDF5 file\n")
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _user_error(work: Path, capsys: pytest.CaptureFixture, argv: list[str], *needles: str) -> str:
    """Run ``sop-cosmo argv``: exit 2, one stderr line holding every needle, nothing created."""
    before = _listing(work)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"sop-cosmo {argv[0]}: error: ")
    for needle in needles:
        assert needle in err, err
    assert _listing(work) == before
    return err


TRAIN = ["train", "--model", "cnn", "--quiet"]
EVALUATE = ["evaluate", "--checkpoint", "cnn.pt", "--data", "val.h5", "--out", "m.json"]


def test_missing_train_file(work, capsys):
    argv = [*TRAIN, "--train", "missing.h5", "--val", "val.h5", "--out", "run"]
    _user_error(work, capsys, argv, "--train missing.h5", "no such patch file", "preprocess")


def test_val_is_a_folder(work, capsys):
    argv = [*TRAIN, "--train", "train.h5", "--val", "empty", "--out", "run"]
    _user_error(work, capsys, argv, "--val empty", "folder")


def test_train_file_that_is_not_hdf5(work, capsys):
    argv = [*TRAIN, "--train", "fake.h5", "--val", "val.h5", "--out", "run"]
    _user_error(work, capsys, argv, "--train fake.h5", "HDF5", "sop-cosmo preprocess")


def test_unreadable_data_file(work, capsys, monkeypatch):
    locked = _patches(work / "locked.h5")
    locked.chmod(0)
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # root reads anything: pretend it cannot
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, m: Path(p).name != locked.name and real(p, m))
    try:
        argv = ["evaluate", "--checkpoint", "cnn.pt", "--data", "locked.h5", "--out", "m.json"]
        _user_error(work, capsys, argv, "--data locked.h5", "not readable", "permission")
    finally:
        locked.chmod(0o644)


def test_missing_data_file(work, capsys):
    argv = ["evaluate", "--checkpoint", "cnn.pt", "--data", "test.h5", "--out", "m.json"]
    _user_error(work, capsys, argv, "--data test.h5", "no such patch file")


def test_missing_checkpoint(work, capsys):
    argv = ["evaluate", "--checkpoint", "run/model.pt", "--data", "val.h5", "--out", "m.json"]
    _user_error(work, capsys, argv, "--checkpoint run/model.pt", "no such file", "sop-cosmo train")


def test_checkpoint_that_is_not_a_torch_file(work, capsys):
    argv = ["evaluate", "--checkpoint", "model.pt", "--data", "val.h5", "--out", "m.json"]
    err = _user_error(work, capsys, argv, "--checkpoint model.pt", "not a sop-cosmo checkpoint")
    assert "file an issue" not in err.lower()


def test_analyze_refuses_a_cnn_checkpoint(work, capsys):
    argv = ["analyze", "--checkpoint", "cnn.pt", "--data", "val.h5", "--out", "an", "--quiet"]
    _user_error(work, capsys, argv, "--checkpoint cnn.pt", "'cnn' model", "sop")


def test_sop_backbone_that_is_not_a_cnn(work, capsys):
    argv = ["train", "--model", "sop", "--backbone", "sop.pt", "--train", "train.h5",
            "--val", "val.h5", "--out", "run", "--quiet"]  # fmt: skip
    _user_error(work, capsys, argv, "--backbone sop.pt", "cnn")


def test_evaluate_out_is_a_folder(work, capsys):
    argv = [*EVALUATE[:-1], "empty"]
    _user_error(work, capsys, argv, "--out empty", "is a directory", "file path")


_FOLDER_OUT = {
    "train": [*TRAIN, "--train", "train.h5", "--val", "val.h5"],
    "analyze": ["analyze", "--checkpoint", "sop.pt", "--data", "val.h5"],
    "baselines": ["baselines", "--checkpoint", "sop.pt", "--data", "val.h5"],
    "controls": ["controls", "--quick"],
    "preprocess": ["preprocess", "--root", "empty"],
    "simulate": ["simulate"],
    "theory": ["theory"],
    "vision-demo": ["vision-demo", "--quick"],
    "text-demo": ["text-demo", "--quick"],
}


@pytest.mark.parametrize("command", sorted(_FOLDER_OUT))
def test_out_is_a_file_where_a_folder_is_written(work, capsys, command):
    argv = [*_FOLDER_OUT[command], "--out", "file.txt"]
    _user_error(work, capsys, argv, "--out file.txt", "not a directory")


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_out_below_a_file(work, capsys, command):
    argv = [*_FOLDER_OUT["train"], "--out", "file.txt/run"] if command == "train" else [
        *EVALUATE[:-1], "file.txt/m.json"]  # fmt: skip
    _user_error(work, capsys, argv, "file.txt is a file, not a folder")


def test_preprocess_root_missing(work, capsys):
    argv = ["preprocess", "--root", "nowhere", "--out", "pp"]
    _user_error(work, capsys, argv, "--root nowhere", "CosmoGrid", "sop-cosmo simulate")


@pytest.mark.parametrize("command", ["train", "evaluate", "analyze"])
def test_cuda_without_a_gpu(work, capsys, monkeypatch, command):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = {
        "train": [*_FOLDER_OUT["train"], "--out", "new/run"],
        "evaluate": [*EVALUATE[:-1], "new/m.json"],
        "analyze": [*_FOLDER_OUT["analyze"], "--out", "new/an"],
    }[command]
    _user_error(work, capsys, [*argv, "--device", "cuda"], "--device", "'cuda'", "--device cpu")


def test_a_run_folder_made_by_a_failed_train_is_removed(work, capsys):
    # The inputs pass the up-front checks; the model builder then refuses an option, after
    # train made its run folder: the empty folders it made go again.
    argv = [*_FOLDER_OUT["train"], "--out", "new/run", "--device", "cpu", "--epochs", "1",
            "--model-options", '{"no_such_option": 1}']  # fmt: skip
    before = _listing(work)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no_such_option" in err.splitlines()[-1]
    assert _listing(work) == before


def test_an_existing_out_folder_is_kept_on_failure(work, capsys):
    argv = [*_FOLDER_OUT["train"], "--out", "empty", "--device", "cpu",
            "--model-options", '{"no_such_option": 1}']  # fmt: skip
    assert main(argv) == 2
    assert (work / "empty").is_dir()


def test_bad_json_names_its_option(work, capsys):
    argv = [*_FOLDER_OUT["train"], "--out", "run", "--model-options", "{bad"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--model-options" in err and "JSON" in err
    assert not (work / "run").exists()


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out.split()
    assert out[0] == "sop-cosmo" and len(out) == 2 and out[1]


def test_debug_shows_the_traceback(work, capsys):
    argv = ["--debug", *TRAIN, "--train", "missing.h5", "--val", "val.h5", "--out", "run"]
    with pytest.raises(FileNotFoundError, match=r"missing\.h5"):
        main(argv)
    assert not (work / "run").exists()


def test_help_shows_every_default():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.required or isinstance(action, argparse._HelpAction):
                continue
            assert "default" in (action.help or ""), f"{name} {action.option_strings}"
