"""The ``vscode`` session type's options."""

from __future__ import annotations

import re

import msgspec

from corral_sdk.errors import Invalid

__all__ = ["VSCodeOptions"]


class VSCodeOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    directory: str = "~"
    """The folder VS Code opens; ``~`` is the user's home on the target."""
    command: str = ""
    """A server to run (a name on the target's ``PATH`` or an absolute path); by default
    ``code-server``, else ``openvscode-server``, on the ``PATH`` or where they install."""

    def __post_init__(self) -> None:
        for field in ("directory", "command"):
            value = getattr(self, field)
            if "\n" in value or "\0" in value or len(value) > 1000:
                raise Invalid(f"{field} must be one line of at most 1000 characters", field=field)
        if not self.directory.strip():
            raise Invalid("directory is empty", field="directory")
        if self.command and not re.fullmatch(r"[A-Za-z0-9._/+-]+", self.command):
            raise Invalid(
                "command must be a program's name or path (letters, digits, . _ / + -)",
                field="command",
            )
