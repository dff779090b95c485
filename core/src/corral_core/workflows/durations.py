"""Durations as the workflow format writes them: ``10s``, ``1m``, ``1h30m``, ``1d``, ``500ms``,
``5n`` (nanoseconds); a bare number is seconds."""

from __future__ import annotations

import re

__all__ = ["format_duration", "parse_duration"]

_UNITS = {
    "n": 1e-9,
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|n|s|m|h|d)")


def parse_duration(value: str | int | float) -> float:
    """Seconds; raises ``ValueError`` naming the value when it is not a duration."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration (10s, 1m, 1h30m, 1d)")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative ({value})")
        return float(value)
    text = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    position, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != position:
            break
        total += float(match[1]) * _UNITS[match[2]]
        position = match.end()
    if not text or position != len(text):
        raise ValueError(
            f"{value!r} is not a duration (10s, 1m, 1h30m, 1d; units n, ms, s, m, h, d)"
        )
    return total


def format_duration(seconds: float) -> str:
    """``1s``, ``0.5s``, ``90s``: to the millisecond (a limit's remainder, 0.999793 s, is 1s)."""
    value = round(float(seconds), 3)
    if value.is_integer():
        return f"{int(value)}s"
    return f"{value:g}s"
