"""Typed provider settings from astro.toml tables: one checker for every cloud's section."""

from __future__ import annotations

from typing import Any

from include.errors import ConfigError


def build_section(cls: Any, values: dict[str, Any], where: str, skip: tuple[str, ...] = ()) -> Any:
    """Build a settings dataclass from a TOML table, rejecting unknown keys and wrong types.

    Args:
        cls: a dataclass whose every field has a default (its type is the default's type).
        values: the TOML table.
        where: the table's name in astro.toml (``[aws]``), for the error message.
        skip: fields that are not read from the table.

    Raises:
        ConfigError: a key is unknown or a value has the wrong type; the message names both.
    """
    fields = {name: f for name, f in cls.__dataclass_fields__.items() if name not in skip}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown} in {where}; known keys: {sorted(fields)}")
    defaults = cls()
    for key, value in values.items():
        expected = type(getattr(defaults, key))
        if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
            raise ConfigError(f"{where} {key} = {value!r} should be of type {expected.__name__}")
    return cls(**values)
