"""Decoding settings tables into msgspec structs with messages that name the key's path."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from corral_sdk.errors import SettingsError

__all__ = ["PluginConfig", "decode_settings", "describe_validation_error"]

T = TypeVar("T")

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")


def _dotted(prefix: str, path: str) -> str:
    """Turn msgspec's ``.database[0].url`` into ``database.0.url`` under ``prefix``."""
    parts = [p for p in re.split(r"[.\[\]]+", path) if p]
    return ".".join([prefix, *parts] if prefix else parts)


def describe_validation_error(error: msgspec.ValidationError, prefix: str = "") -> tuple[str, str]:
    """Return ``(key path, message)`` for a msgspec validation error.

    ``Object contains unknown field `uri` - at `$.database``` becomes
    ``("database.uri", "unknown key database.uri")``.
    """
    match = _AT.match(str(error))
    assert match is not None  # the pattern matches any string
    msg, path = match.group("msg"), _dotted(prefix, match.group("path") or "")
    if unknown := _UNKNOWN.match(msg):
        key = f"{path}.{unknown['field']}" if path else unknown["field"]
        return key, f"unknown key {key}"
    if missing := _MISSING.match(msg):
        key = f"{path}.{missing['field']}" if path else missing["field"]
        return key, f"missing required key {key}"
    return path, f"{path}: {msg[0].lower()}{msg[1:]}" if path else msg


def decode_settings(data: Any, type: type[T], *, prefix: str = "", source: str = "") -> T:
    """Convert a parsed table into ``type``, raising :class:`SettingsError` naming the key.

    Strings are accepted for numbers and booleans (they come from environment variables).
    """
    try:
        return msgspec.convert(data, type, strict=False)
    except msgspec.ValidationError as exc:
        key, message = describe_validation_error(exc, prefix)
        where = f" in {source}" if source else ""
        raise SettingsError(f"{message}{where}", field=key or None) from None


class PluginConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The settings handed to plugins by ``corral_configure``."""

    data_dir: str
    """The directory where Corral keeps its data; a plugin may use ``<data_dir>/<name>/``."""
    public_url: str
    """The URL users reach Corral at (for callbacks and links)."""
    plugins: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    """Every ``[plugins.<name>]`` table, undecoded."""

    def for_plugin(self, name: str, type: type[T]) -> T:
        """Decode ``[plugins.<name>]`` (empty when absent) into ``type``."""
        return decode_settings(self.plugins.get(name, {}), type, prefix=f"plugins.{name}")
