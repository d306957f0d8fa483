"""The workflow's config sections and the dataclasses that own their keys and defaults.

``workflow/rules/common.smk`` validates the user's config against the schema (types and
ranges; the schema holds no defaults), fills each section from :func:`fill_defaults` and turns
a section into command-line options with :func:`stage_flags`, which the stage's CLI parses back
into the same dataclass. ``tests/workflow/test_config_schema.py`` checks that schema and
dataclasses name the same keys with the same types.
"""

from __future__ import annotations

import dataclasses
import shlex
from typing import Any

from sop_cosmo._options import flag_name, to_cli_value
from sop_cosmo.cosmo.config import (
    AnalyzeConfig,
    BaselinesConfig,
    ControlsConfig,
    PreprocessConfig,
    SimulateConfig,
    TrainStageConfig,
)
from sop_cosmo.theory import TheoryRunConfig

__all__ = ["SECTIONS", "fill_defaults", "section_defaults", "stage_flags"]

#: Workflow config section → the dataclass that owns its keys and defaults.
SECTIONS: dict[str, type] = {
    "theory": TheoryRunConfig,
    "simulate": SimulateConfig,
    "preprocess": PreprocessConfig,
    "train": TrainStageConfig,
    "analyze": AnalyzeConfig,
    "baselines": BaselinesConfig,
    "controls": ControlsConfig,
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
