"""One source for every default: the stage dataclasses, the CLI built from them, the schema."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path

import pytest
import yaml

from sop_cosmo._options import flag_name
from sop_cosmo.cli import build_parser
from sop_cosmo.cosmo import config as cfg
from sop_cosmo.workflow_config import SECTIONS, fill_defaults, section_defaults, stage_flags

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
OPTION_SECTIONS = {"cnn_options": cfg.CNNOptions, "sop_options": cfg.SOPOptions}
COMMANDS = {
    "simulate": cfg.SimulateConfig,
    "preprocess": cfg.PreprocessConfig,
    "train": cfg.TrainConfig,
    "evaluate": cfg.EvaluateConfig,
    "analyze": cfg.AnalyzeConfig,
    "baselines": cfg.BaselinesConfig,
    "controls": cfg.ControlsConfig,
}
_JSON_TYPES = {
    int: {"integer"},
    float: {"number", "integer"},
    str: {"string"},
    bool: {"boolean"},
    tuple: {"array"},
    dict: {"object"},
}


def json_types(tp) -> set[str]:
    """The JSON-schema types a value of the python annotation ``tp`` may have."""
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return set().union(*(json_types(a) for a in args))
    if tp is type(None):
        return {"null"}
    return _JSON_TYPES[typing.get_origin(tp) or tp]


def schema_types(prop: dict) -> set[str]:
    t = prop["type"]
    return {t} if isinstance(t, str) else set(t)


def _leaf_sections():
    for section, cls in SECTIONS.items():
        yield section, cls, SCHEMA["properties"][section]["properties"]
    train = SCHEMA["properties"]["train"]["properties"]
    for key, cls in OPTION_SECTIONS.items():
        yield f"train.{key}", cls, train[key]["properties"]


@pytest.mark.parametrize(("section", "cls", "props"), list(_leaf_sections()), ids=lambda v: "")
def test_schema_keys_and_types_agree_with_the_dataclass(section, cls, props):
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key, prop in props.items():
        assert key in fields, f"{section}.{key}: in the schema but not in {cls.__name__}"
        allowed = json_types(hints[key])
        got = schema_types(prop)
        # the schema may be narrower (integer for a float field), never wider
        assert got <= allowed | ({"integer"} if "number" in allowed else set()), (
            f"{section}.{key}: schema type {got}, {cls.__name__} allows {allowed}"
        )
        assert "default" not in prop, (
            f"{section}.{key}: the schema repeats a default; {cls.__name__} owns it"
        )
        if "enum" in prop and "choices" in fields[key].metadata:
            assert set(prop["enum"]) <= set(fields[key].metadata["choices"]), f"{section}.{key}"


@pytest.mark.parametrize("section", list(SECTIONS))
def test_workflow_defaults_are_the_dataclass_defaults(section):
    config = fill_defaults({}, SCHEMA)
    props = SCHEMA["properties"][section]["properties"]
    expected = {k: v for k, v in section_defaults(section).items() if k in props}
    assert config[section] == expected
    # what the user sets is kept
    user = {section: {next(iter(props)): "mine"}}
    assert fill_defaults(user, SCHEMA)[section][next(iter(props))] == "mine"


@pytest.mark.parametrize(("command", "cls"), list(COMMANDS.items()))
def test_cli_defaults_are_the_dataclass_defaults(command, cls):
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[command]
    by_dest = {a.dest: a for a in sub._actions}
    for f in dataclasses.fields(cls):
        action = by_dest[f.name]
        assert flag_name(f) in action.option_strings
        if not action.required:
            assert action.default == getattr(cls(), f.name), f"{command} {flag_name(f)}"
            assert "default" in (action.help or ""), f"{command} {flag_name(f)} hides its default"


@pytest.mark.parametrize("section", ["preprocess", "analyze", "baselines", "simulate"])
def test_stage_flags_round_trip_through_the_cli(section):
    # What the workflow passes is parsed back into the same values.
    values = section_defaults(section)
    cls = SECTIONS[section]
    argv = {
        "simulate": ["simulate", "--out", "x"],
        "preprocess": ["preprocess", "--root", "r", "--out", "x"],
        "analyze": ["analyze", "--checkpoint", "c", "--data", "d", "--out", "x"],
        "baselines": ["baselines", "--checkpoint", "c", "--data", "d", "--out", "x"],
    }
    import shlex

    args = build_parser().parse_args(argv[section] + shlex.split(stage_flags(section, values)))
    rebuilt = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)}
    assert cls(**rebuilt) == cls()


def test_model_options_defaults_and_overrides():
    sop = cfg.model_options("sop", {"n_groups": 7})
    assert sop["n_groups"] == 7
    assert sop["attention_patch"] == cfg.SOPOptions.attention_patch
    assert cfg.model_options("cnn")["widths"] == list(cfg.CNNOptions.widths)
    with pytest.raises(ValueError, match="kind"):
        cfg.model_options("rnn")


def test_resolve_names_an_unknown_setting_and_the_close_one():
    with pytest.raises(ValueError, match=r"'tau_vod'.*'tau_void'"):
        cfg.resolve(cfg.AnalyzeConfig, None, {"tau_vod": 0.5})
    assert cfg.resolve(cfg.AnalyzeConfig, None, {"tau_void": 0.5}).tau_void == 0.5


def _readme_defaults() -> dict[str, str]:
    import re

    text = (ROOT / "config" / "README.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)\.([a-z_0-9]+)` \| ([^|]+) \|", text, flags=re.M)
    return {f"{s}.{k}": v.strip() for s, k, v in rows if s in SECTIONS}


def _as_written(value) -> str:
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, dict):
        return "`{}`" if not value else str(value)
    return str(value)


def test_the_config_readme_shows_the_dataclass_defaults():
    filled = fill_defaults({}, SCHEMA)
    table = _readme_defaults()
    assert len(table) >= 25
    for key, written in table.items():
        section, name = key.split(".")
        assert written == _as_written(filled[section][name]), f"config/README.md {key}"
