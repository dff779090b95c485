"""The ``vscode`` session type's options."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from corral_sdk.errors import Invalid

__all__ = ["VSCodeOptions", "vscode_options"]

_FIELD = re.compile(
    r"at `\$\.([A-Za-z_]+)`|unknown field `([^`]+)`|missing required field `([^`]+)`"
)


class VSCodeOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    directory: str = "~"
    """The folder VS Code opens; ``~`` is the user's home on the target."""
    command: str = ""
    """A server to run: a name on the target's ``PATH`` or a path (``~/`` for the home
    directory); one whose name starts with ``openvscode-server`` is run as openvscode-server,
    any other as code-server. By default ``code-server``, else ``openvscode-server``, on the
    ``PATH`` or where they install (see ``corral_vscode.vscode.SEARCHED``)."""

    def __post_init__(self) -> None:
        for field in ("directory", "command"):
            value = getattr(self, field)
            if "\n" in value or "\0" in value or len(value) > 1000:
                raise Invalid(f"{field} must be one line of at most 1000 characters", field=field)
        if not self.directory.strip():
            raise Invalid("directory is empty", field="directory")
        if self.command and not re.fullmatch(r"(~/)?[A-Za-z0-9._/+-]+", self.command):
            raise Invalid(
                "command must be a program's name or path (letters, digits, . _ / + -, "
                "and ~/ first for the home directory)",
                field="command",
            )


def vscode_options(value: Any) -> VSCodeOptions:
    """``SessionSpec.options`` as :class:`VSCodeOptions`: the kernel gives an instance; ``None``
    means the defaults; a mapping is decoded (unknown keys refused). ``Invalid`` names the
    field."""
    if isinstance(value, VSCodeOptions):
        return value
    if value is None:
        return VSCodeOptions()
    try:
        return msgspec.convert(value, VSCodeOptions)
    except msgspec.ValidationError as exc:
        found = _FIELD.search(str(exc))
        field = next((g for g in found.groups() if g), "options") if found else "options"
        raise Invalid(f"vscode options: {exc}", field=field) from None
