"""Settings for every Outpost program: a frozen dataclass read once from a TOML file and
`OUTPOST_<SECTION>_<FIELD>` environment variables (environment wins), then command-line overrides.

A bad value fails at start-up with `SettingsError`, naming the key and what it accepts.
Sizes accept `512MiB`-style suffixes; lists accept a TOML array or a comma-separated variable.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["SettingsError", "load_settings", "parse_size"]

T = TypeVar("T")

_SIZE = re.compile(r"\s*([0-9]+)\s*(B|KiB|MiB|GiB|KB|MB|GB|k|M|G)?\s*", re.IGNORECASE)
_UNITS = {
    None: 1,
    "b": 1,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}


class SettingsError(ValueError):
    """A setting that cannot be used; the message names the key and what it accepts."""


def parse_size(text: str | int, key: str = "size") -> int:
    """`64MiB`, `512 KiB`, `1000` → bytes."""
    if isinstance(text, int):
        return text
    match = _SIZE.fullmatch(text)
    if not match:
        raise SettingsError(f"{key}={text!r}: expected a size such as 1048576, 512KiB or 64MiB")
    number, unit = match.groups()
    return int(number) * _UNITS[unit.lower() if unit else None]


def load_settings(
    cls: type[T],
    section: str,
    *,
    config_file: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Build `cls` from `[section]` of the TOML file, then `OUTPOST_SECTION_*`, then overrides.

    Overrides whose value is None are ignored, so an unset command-line option keeps the file's
    or the environment's value.
    """
    environ = os.environ if environ is None else environ
    prefix = f"OUTPOST_{section.upper()}_"
    config_file = config_file or environ.get(f"{prefix}CONFIG")
    raw: dict[str, Any] = {}
    if config_file:
        try:
            document = tomllib.loads(Path(config_file).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"config file {config_file}: {exc}") from exc
        table = document.get(section, {})
        if not isinstance(table, dict):
            raise SettingsError(f"config file {config_file}: [{section}] is not a table")
        raw.update(table)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name in fields:
        variable = prefix + name.upper()
        if variable in environ:
            raw[name] = environ[variable]
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise SettingsError(f"[{section}] has unknown keys {unknown}; known: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {
        name: _convert(f"{section}.{name}", value, hints[name]) for name, value in raw.items()
    }
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"[{section}]: {exc}") from exc


def _convert(key: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value in ("", None):
            return None
        return _convert(key, value, options[0])
    if origin is tuple:
        (item,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise SettingsError(f"{key}={value!r}: expected a list")
        stripped = [i.strip() if isinstance(i, str) else i for i in items]
        return tuple(_convert(key, i, item) for i in stripped if i != "")
    if hint is bool:
        if isinstance(value, bool):
            return value
        lowered = str(value).strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise SettingsError(f"{key}={value!r}: expected true or false")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if key.endswith(("_bytes", "_size")):
            return parse_size(str(value), key)
        try:
            return int(str(value))
        except ValueError:
            raise SettingsError(f"{key}={value!r}: expected an integer") from None
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise SettingsError(f"{key}={value!r}: expected a number") from None
    if hint is str:
        if not isinstance(value, str):
            raise SettingsError(f"{key}={value!r}: expected a string")
        return value
    if hint is Path:
        return Path(str(value))
    raise SettingsError(f"{key}: unsupported setting type {hint!r}")
