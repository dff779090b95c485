"""The ``jupyter`` session type's options."""

from __future__ import annotations

from typing import Literal

import msgspec

from corral_sdk.errors import Invalid

__all__ = ["JupyterOptions"]


class JupyterOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    directory: str = "~"
    """Where Jupyter starts (its root directory); ``~`` is the user's home on the target."""
    interface: Literal["lab", "notebook"] = "lab"
    """JupyterLab, or the classic notebook interface (Jupyter Notebook 7)."""
    command: str = "jupyter"
    """The ``jupyter`` program on the target: a name on its ``PATH`` or an absolute path."""

    def __post_init__(self) -> None:
        for field in ("directory", "command"):
            value = getattr(self, field)
            if not value.strip() or "\n" in value or "\0" in value:
                raise Invalid(f"{field} must be one non-empty line", field=field)
            if len(value) > 1000:
                raise Invalid(f"{field} is longer than 1000 characters", field=field)
