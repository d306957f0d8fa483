"""Command-line options built from a config dataclass, and the dataclass built back from them.

Each field ``name`` becomes ``--name-with-dashes`` (or ``metadata["flag"]``) with the field's
default, its ``metadata["help"]`` and ``metadata["choices"]``; the help shows the default. Types:
``bool`` gives ``--x / --no-x``; ``X | None`` also accepts ``none``; ``tuple[...]`` takes a
comma-separated list; ``dict`` takes JSON. A bad value is an argparse error that names the option.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["add_options", "flag_name", "from_args", "to_cli_value"]


def flag_name(f: dataclasses.Field) -> str:
    """The option string of a field: ``metadata["flag"]`` or ``--field-name``."""
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return tp, False


def _scalar(tp: Any, what: str) -> Callable[[str], Any]:
    if tp is Any:
        return str

    def parse(text: str) -> Any:
        try:
            return tp(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None

    return parse


def _parser(tp: Any) -> Callable[[str], Any]:
    inner, optional = _unwrap_optional(tp)
    origin = typing.get_origin(inner)
    if origin is tuple:
        item = typing.get_args(inner)[0]
        one = _scalar(item, f"comma-separated {getattr(item, '__name__', 'values')}")

        def parse(text: str) -> Any:
            return tuple(one(t.strip()) for t in text.split(",") if t.strip())

    elif origin is dict or inner is dict:

        def parse(text: str) -> Any:
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                raise argparse.ArgumentTypeError(f"invalid JSON ({err.msg}): {text!r}") from None
            if not isinstance(value, dict):
                raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
            return value

    else:
        parse = _scalar(inner, {int: "an integer", float: "a number"}.get(inner, "a string"))
    if not optional:
        return parse

    def parse_optional(text: str) -> Any:
        return None if text.strip().lower() in ("none", "null") else parse(text)

    return parse_optional


def to_cli_value(value: Any) -> str:
    """How a config value is written on the command line (the inverse of the option parser)."""
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return "none"
    return str(value)


def add_options(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    skip: Iterable[str] = (),
    required: Iterable[str] = (),
) -> None:
    """Add one option per field of the dataclass ``cls`` (except ``skip``)."""
    hints = typing.get_type_hints(cls)
    skip, required = set(skip), set(required)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        tp = hints[f.name]
        help_text = f.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": f.name, "help": help_text}
        if f.name in required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
            kwargs["help"] = f"{help_text} (default: {'on' if default else 'off'})"
        else:
            kwargs["type"] = _parser(tp)
            kwargs["metavar"] = f.name.upper()
            if "choices" in f.metadata:
                kwargs["choices"] = f.metadata["choices"]
                kwargs["metavar"] = "{" + ",".join(f.metadata["choices"]) + "}"
            if f.name not in required:
                kwargs["help"] = f"{help_text} (default: {to_cli_value(default)})"
        parser.add_argument(flag_name(f), **kwargs)


def from_args(cls: type, args: argparse.Namespace, **extra: Any) -> Any:
    """The dataclass ``cls`` from the parsed options (fields not on the parser keep defaults)."""
    values = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)
    }
    return cls(**{**values, **extra})
