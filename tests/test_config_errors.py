"""A bad workflow config is one line naming the key path, the value and what is allowed, with a
"did you mean" for a typo, and never the schema (sop_cosmo.workflow_config.check_config)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from sop_cosmo.workflow_config import check_config

REPO = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _error(edit) -> str:
    config = copy.deepcopy(CONFIG)
    edit(config)
    with pytest.raises(ValueError) as err:
        check_config(config, SCHEMA)
    message = str(err.value)
    assert len(message.splitlines()) == 1, message
    assert "additionalProperties" not in message and "$schema" not in message
    return message


@pytest.mark.parametrize("name", ["config.yaml", "cosmogrid.yaml"])
def test_the_shipped_configs_pass(name):
    check_config(yaml.safe_load((REPO / "config" / name).read_text()), SCHEMA)
    check_config({}, REPO / "workflow" / "schemas" / "config.schema.yaml")


def test_unknown_top_level_key_suggests_the_close_one():
    msg = _error(lambda c: c.update(trian={"seed": 1}))
    assert msg.startswith("config: trian = ")
    assert "unknown key" in msg and "did you mean 'train'?" in msg and "analyze" in msg


def test_unknown_nested_key_names_its_path():
    msg = _error(lambda c: c["train"]["sop_options"].update(n_group=8))
    assert msg.startswith("config: train.sop_options.n_group = 8: unknown key")
    assert "did you mean 'n_groups'?" in msg and "attention_patch" in msg


def test_wrong_enum_value_lists_the_allowed_ones():
    msg = _error(lambda c: c["train"].update(device="cude"))
    assert 'train.device = "cude"' in msg and "auto, cpu, cuda" in msg
    assert "did you mean 'cuda'?" in msg
    assert "did you mean" not in _error(lambda c: c["simulate"].update(nside=100))


def test_wrong_type_names_both_types():
    msg = _error(lambda c: c["simulate"].update(nside="64"))
    assert 'simulate.nside = "64": expected integer, got string' in msg
    msg = _error(lambda c: c["train"].update(cnn_epochs=True))
    assert "train.cnn_epochs = true: expected integer or null, got boolean" in msg


def test_out_of_range_names_the_bound():
    assert "theory.max_d = 30: expected ≤ 16" in _error(lambda c: c["theory"].update(max_d=30))
    msg = _error(lambda c: c["preprocess"].update(bins=[1, 7]))
    assert "preprocess.bins[1] = 7: expected ≤ 4" in msg
    msg = _error(lambda c: c["train"]["sop_options"].update(keep_fraction=0))
    assert "train.sop_options.keep_fraction = 0: expected > 0" in msg


def test_further_problems_are_counted():
    def edit(c):
        c["theory"]["max_d"] = 30
        c["train"]["seeds"] = [-1]

    msg = _error(edit)
    assert msg.startswith("config: theory.max_d") and "1 more key(s)" in msg
