"""The workflow's config sections and the dataclasses that own their keys and defaults.

``workflow/rules/common.smk`` validates the user's config against the schema (types and
ranges; the schema holds no defaults) with :func:`check_config`, whose error is one line that
names the key, the value and what is allowed; it then fills each section from
:func:`fill_defaults` and turns a section into command-line options with :func:`stage_flags`,
which the stage's CLI parses back into the same dataclass.
``tests/workflow/test_config_schema.py`` checks that schema and dataclasses name the same keys
with the same types.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import shlex
from pathlib import Path
from typing import Any

import yaml

from sop_cosmo._options import flag_name, to_cli_value
from sop_cosmo.cosmo.config import (
    AnalyzeConfig,
    BaselinesConfig,
    ControlsConfig,
    NullsConfig,
    PreprocessConfig,
    SimulateConfig,
    TrainStageConfig,
)
from sop_cosmo.theory import TheoryRunConfig

__all__ = ["SECTIONS", "check_config", "fill_defaults", "section_defaults", "stage_flags"]

#: Workflow config section → the dataclass that owns its keys and defaults.
SECTIONS: dict[str, type] = {
    "theory": TheoryRunConfig,
    "simulate": SimulateConfig,
    "preprocess": PreprocessConfig,
    "train": TrainStageConfig,
    "analyze": AnalyzeConfig,
    "baselines": BaselinesConfig,
    "controls": ControlsConfig,
    "nulls": NullsConfig,
}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def section_defaults(section: str) -> dict[str, Any]:
    """Every field default of one section's dataclass, as plain YAML/JSON values."""
    cls = SECTIONS[section]
    return {f.name: _plain(getattr(cls(), f.name)) for f in dataclasses.fields(cls)}


def fill_defaults(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``config`` with every key the schema allows in a section, and that the user left out,
    set to the dataclass default. Changes ``config`` in place and returns it."""
    for section in SECTIONS:
        allowed = schema["properties"][section]["properties"]
        values = config.setdefault(section, {})
        for key, default in section_defaults(section).items():
            if key in allowed and key not in values:
                values[key] = default
    return config


def stage_flags(section: str, values: dict[str, Any], *, skip: tuple[str, ...] = ()) -> str:
    """The command-line options that give the stage's dataclass these ``values``.

    Only keys the dataclass owns are passed; ``None`` passes ``none``; booleans pass
    ``--x`` / ``--no-x``.
    """
    cls = SECTIONS[section]
    out = []
    for f in dataclasses.fields(cls):
        if f.name not in values or f.name in skip:
            continue
        value = values[f.name]
        flag = flag_name(f)
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + flag[2:])
        else:
            out.append(f"{flag} {shlex.quote(to_cli_value(value))}")
    return " ".join(out)


def _key_path(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the top level"


def _short_repr(value: Any, limit: int = 60) -> str:
    text = json.dumps(value, default=str)  # as JSON: true, null, "text"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _suggest(word: Any, choices: Any) -> str:
    if not isinstance(word, str):
        return ""
    match = difflib.get_close_matches(word, [str(c) for c in choices], n=1, cutoff=0.7)
    return f" (did you mean {match[0]!r}?)" if match else ""


_JSON_TYPES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}


_BOUNDS = {
    "minimum": "≥ {}",
    "maximum": "≤ {}",
    "exclusiveMinimum": "> {}",
    "exclusiveMaximum": "< {}",
    "minItems": "at least {} item(s)",
    "maxItems": "at most {} item(s)",
}


def _describe(err: Any) -> str:
    """One line for one jsonschema error: key path, value, what is allowed, a suggestion."""
    where, value, schema = _key_path(err.absolute_path), err.instance, err.schema
    if err.validator == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        key = sorted(set(value) - set(allowed))[0]
        path = _key_path([*err.absolute_path, key])
        return (
            f"{path} = {_short_repr(value[key])}: unknown key{_suggest(key, allowed)}; "
            f"allowed in {where}: {', '.join(allowed)}"
        )
    shown = f"{where} = {_short_repr(value)}"
    if err.validator == "enum":
        options = ", ".join(map(str, err.validator_value))
        return f"{shown}: expected one of {options}{_suggest(value, err.validator_value)}"
    if err.validator == "type":
        types_ = err.validator_value
        expected = " or ".join(types_) if isinstance(types_, list) else types_
        got = _JSON_TYPES.get(type(value), type(value).__name__)
        return f"{shown}: expected {expected}, got {got}"
    if err.validator in _BOUNDS:
        return f"{shown}: expected {_BOUNDS[err.validator].format(err.validator_value)}"
    if err.validator == "required":
        return f"{where}: {err.message}"
    return f"{shown}: {err.message}"


def check_config(config: dict[str, Any], schema: dict[str, Any] | str | os.PathLike) -> None:
    """Validate the workflow ``config`` against the JSON ``schema`` (a dict or a YAML file).

    Raises
    ------
    ValueError
        One line on the first problem (in key order): the key path, the value, what the schema
        allows and, for an unknown key or enum value, the closest allowed one ("did you mean
        ..."); then how many more problems there are. The schema itself is never shown.
    """
    import jsonschema

    if not isinstance(schema, dict):
        schema = yaml.safe_load(Path(schema).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(
        validator.iter_errors(config if config is not None else {}),
        key=lambda e: [str(p) for p in e.absolute_path],
    )
    if errors:
        others = {tuple(e.absolute_path) for e in errors} - {tuple(errors[0].absolute_path)}
        more = f" ({len(others)} more key(s) with problems)" if others else ""
        raise ValueError(f"config: {_describe(errors[0])}{more}; see config/README.md")
