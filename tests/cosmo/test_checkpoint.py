"""The checkpoint contract: the format tag, the typed reader and its refusals."""

import pytest
import torch

from sop_cosmo.cosmo.contracts.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    check_resumable,
    load_checkpoint,
    save_checkpoint,
)
from sop_cosmo.cosmo.models import build_model, load_model


def _payload(kind="cnn"):
    model = build_model("cnn", in_channels=1, patch_size=16, n_outputs=2,
                        options={"widths": [4], "kernel": 3, "hidden": [8]})  # fmt: skip
    args = {"kind": kind, "in_channels": 1, "patch_size": 16, "n_outputs": 2,
            "n_features": None, "options": {"widths": [4], "kernel": 3, "hidden": [8]}}  # fmt: skip
    return {
        "kind": kind, "model_args": args, "backbone_args": None, "config": {"seed": 0},
        "norm": {"kind": kind}, "param_names": ["Om", "s8"], "data_attrs": {"patch_size": 16},
        "version": "0", "git_sha": "abc", "model_state": model.state_dict(), "epoch": 2,
        "step": 10, "val_loss": 0.5,
    }  # fmt: skip


def test_save_then_load_is_typed_and_keeps_the_payload(tmp_path):
    path = save_checkpoint(_payload(), tmp_path / "run" / "model.pt")
    raw = torch.load(path, weights_only=True)
    assert next(iter(raw)) == "format" and raw["format"] == CHECKPOINT_FORMAT
    ckpt = load_checkpoint(path)
    assert isinstance(ckpt, Checkpoint) and ckpt.path == path
    assert (ckpt.kind, ckpt.epoch, ckpt.step, ckpt.val_loss) == ("cnn", 2, 10, 0.5)
    assert ckpt.options == {"widths": [4], "kernel": 3, "hidden": [8]}
    assert ckpt.param_names == ["Om", "s8"] and ckpt.payload.keys() == raw.keys()
    model, loaded = load_model(path, expect_kind="cnn")
    assert loaded.kind == "cnn" and not model.training
    assert not list((tmp_path / "run").glob(".*"))  # atomic: no temp file left


def test_refusals_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"missing\.pt: no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"junk\.pt: not a sop-cosmo checkpoint.*sop-cosmo train"):
        load_checkpoint(junk)
    torch.save({"format": "other/2"}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match=r"foreign\.pt: not a sop-cosmo checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="format: expected"):
        save_checkpoint({"format": "other/2"}, tmp_path / "x.pt")
    path = save_checkpoint(_payload(), tmp_path / "cnn.pt")
    with pytest.raises(
        ValueError, match=r"holds a 'cnn' model, not a sop checkpoint; the analysis"
    ):
        load_checkpoint(path, expect_kind="sop", purpose="the analysis")


def test_check_resumable_lists_the_differing_keys(tmp_path):
    check_resumable(tmp_path / "last.pt", {"config": {"lr": 1}}, {"config": {"lr": 1}})
    with pytest.raises(ValueError, match=r"config\.lr: 1 -> 2") as err:
        check_resumable(tmp_path / "last.pt", {"config": {"lr": 1}}, {"config": {"lr": 2}})
    assert "Delete" in str(err.value) and "another --out" in str(err.value)
