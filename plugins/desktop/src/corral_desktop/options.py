"""The options of a ``desktop`` session (the record's ``config``)."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from corral_sdk.errors import Invalid

__all__ = ["DEPTHS", "DesktopOptions", "desktop_options"]

DEPTHS = (16, 24, 32)
"""The pixel depths Xvnc supports ("anything else is likely to cause strange behaviour")."""
MIN_SIDE, MAX_SIDE = 200, 8192
MAX_COMMAND = 2000
_GEOMETRY = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")
_FIELD = re.compile(
    r"at `\$\.([A-Za-z_]+)`|unknown field `([^`]+)`|missing required field `([^`]+)`"
)


class DesktopOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a desktop session may be given; every key is optional."""

    geometry: str = "1280x800"
    """The desktop's size in pixels, ``WIDTHxHEIGHT`` (each side 200 to 8192). noVNC asks the
    server to follow the browser window's size once connected (``resize=remote``)."""
    depth: int = 24
    """Bits per pixel: 16, 24 or 32."""
    command: str = ""
    """A shell command line started in the desktop, in the foreground (``xfce4-session``,
    ``xterm -e htop``); the desktop ends when it ends. Empty: ``xterm`` when the target has
    it, else nothing (an empty screen)."""

    def __post_init__(self) -> None:
        match = _GEOMETRY.fullmatch(self.geometry)
        if match is None:
            raise Invalid(
                f"the geometry must be WIDTHxHEIGHT in pixels (1280x800), not {self.geometry!r}",
                field="geometry",
            )
        width, height = int(match[1]), int(match[2])
        if not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
            raise Invalid(
                f"the geometry's width and height must be between {MIN_SIDE} and {MAX_SIDE} "
                f"pixels, not {self.geometry}",
                field="geometry",
            )
        if self.depth not in DEPTHS:
            raise Invalid(
                f"the depth must be one of {', '.join(map(str, DEPTHS))}, not {self.depth}",
                field="depth",
            )
        if len(self.command) > MAX_COMMAND:
            raise Invalid(f"the command must be at most {MAX_COMMAND} characters", field="command")
        if "\0" in self.command or "\n" in self.command or "\r" in self.command:
            raise Invalid("the command must be one line", field="command")


def desktop_options(value: Any) -> DesktopOptions:
    """``SessionSpec.options`` as :class:`DesktopOptions`: the kernel gives an instance; ``None``
    means the defaults; a mapping is decoded (unknown keys refused). ``Invalid`` names the
    field."""
    if isinstance(value, DesktopOptions):
        return value
    if value is None:
        return DesktopOptions()
    try:
        return msgspec.convert(value, DesktopOptions)
    except msgspec.ValidationError as exc:
        found = _FIELD.search(str(exc))
        field = next((g for g in found.groups() if g), "options") if found else "options"
        raise Invalid(f"desktop options: {exc}", field=field) from None
