"""Run configuration files (TOML): read, validate against a protocol's schema, fill in defaults.

A schema is a dict: ``key -> Field`` for a value, ``key -> dict`` for a table, and
``key -> [dict]`` for an array of tables (``[[stages]]``). Every problem is reported with the key's
full dotted name: an unknown key lists the allowed ones, a wrong type names the expected one.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

_NAMES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list"}


class ConfigError(ValueError):
    """A configuration file that does not match its schema; the message names the key."""


@dataclasses.dataclass(frozen=True)
class Field:
    """One value: its type, its default (``None``: optional, absent unless given) and, for lists,
    the type of the items; ``choices`` restricts the allowed values, ``check`` (of the value, or of
    each item of a list) returns what is wrong with it, or None."""

    type: type
    default: Any = None
    item: type | None = None
    choices: tuple | None = None
    required: bool = False
    check: Callable[[Any], str | None] | None = None


def positive(v: float) -> str | None:
    return None if v > 0 else "must be > 0"


def non_negative(v: float) -> str | None:
    return None if v >= 0 else "must be >= 0"


def at_least(lo: float) -> Callable[[float], str | None]:
    return lambda v: None if v >= lo else f"must be >= {lo}"


def between(lo: float, hi: float) -> Callable[[float], str | None]:
    return lambda v: None if lo <= v <= hi else f"must be in [{lo}, {hi}]"


def element(v: str) -> str | None:
    from ase.data import atomic_numbers

    return None if v in atomic_numbers and v != "X" else "is not a chemical element symbol"


def _type_ok(value: Any, t: type) -> bool:
    if t is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, t)


def _check(value: Any, field: Field, name: str) -> Any:
    if not _type_ok(value, field.type):
        raise ConfigError(f"{name}: expected {_NAMES.get(field.type, field.type.__name__)}, got {value!r}")
    if field.type is list and field.item is not None:
        for i, v in enumerate(value):
            if not _type_ok(v, field.item):
                raise ConfigError(f"{name}[{i}]: expected {_NAMES[field.item]}, got {v!r}")
        value = [float(v) for v in value] if field.item is float else list(value)
    if field.choices is not None:
        bad = [v for v in (value if field.type is list else [value]) if v not in field.choices]
        if bad:
            raise ConfigError(f"{name}: {bad[0]!r} is not allowed; choose from {list(field.choices)}")
    if field.check is not None:
        items = [(f"{name}[{i}]", v) for i, v in enumerate(value)] if field.type is list else [(name, value)]
        for where, v in items:
            problem = field.check(v)
            if problem:
                raise ConfigError(f"{where}: {v!r} {problem}")
    return float(value) if field.type is float else value


def validate(raw: dict, schema: dict, where: str = "") -> dict:
    """``raw`` checked against ``schema``; returns a new dict with every default filled in."""
    unknown = sorted(set(raw) - set(schema))
    if unknown:
        table = f"[{where.rstrip('.')}]" if where else "the top level"
        raise ConfigError(f"unknown key {where}{unknown[0]!r} in {table}; allowed keys: {', '.join(sorted(schema))}")
    out: dict = {}
    for key, spec in schema.items():
        name = f"{where}{key}"
        if isinstance(spec, dict):
            value = raw.get(key, {})
            if not isinstance(value, dict):
                raise ConfigError(f"{name}: expected a table [{name}], got {value!r}")
            out[key] = validate(value, spec, f"{name}.")
        elif isinstance(spec, list):
            value = raw.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                raise ConfigError(f"{name}: expected an array of tables [[{name}]], got {value!r}")
            out[key] = [validate(v, spec[0], f"{name}[{i}].") for i, v in enumerate(value)]
        elif key in raw:
            out[key] = _check(raw[key], spec, name)
        elif spec.required:
            raise ConfigError(f"{name}: required key missing")
        elif spec.default is not None:
            out[key] = list(spec.default) if isinstance(spec.default, list | tuple) else spec.default
    return out


def differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two validated configurations, with both values."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += differences(va, vb, f"{prefix}{key}.")
        elif isinstance(va, list) and isinstance(vb, list) and va and isinstance(va[0], dict) and len(va) == len(vb):
            for i, (x, y) in enumerate(zip(va, vb)):
                out += differences(x, y, f"{prefix}{key}[{i}].")
        elif va != vb:
            out.append(f"{prefix}{key} ({va!r} there, {vb!r} here)")
    return out


def read(path: str | Path) -> dict:
    """The raw (unvalidated) table of a TOML file; an unreadable file or a syntax error names the file."""
    try:
        return tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc


def load(path: str | Path, schema: dict) -> dict:
    """Read and validate a TOML file."""
    raw = read(path)
    try:
        return validate(raw, schema)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def dumps(config: dict) -> str:
    """TOML text of a validated configuration (tables after values, as TOML requires)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    def table(d: dict, prefix: str, lines: list[str]) -> None:
        for k, v in d.items():
            if not isinstance(v, dict | list) or (isinstance(v, list) and not (v and isinstance(v[0], dict))):
                lines.append(f"{k} = {value(v)}")
        for k, v in d.items():
            if isinstance(v, dict):
                lines.append(f"\n[{prefix}{k}]")
                table(v, f"{prefix}{k}.", lines)
            elif isinstance(v, list) and v and isinstance(v[0], dict):
                for item in v:
                    lines.append(f"\n[[{prefix}{k}]]")
                    table(item, f"{prefix}{k}.", lines)

    lines: list[str] = []
    table(config, "", lines)
    return "\n".join(lines) + "\n"
