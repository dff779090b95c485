"""What a cluster is: its definition (the resource's ``spec``), states and share levels."""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from corral_core.ssh.pool import SSHEndpoint
from corral_sdk.errors import Invalid

__all__ = [
    "CLUSTER_KIND",
    "CLUSTER_SHARE_LEVELS",
    "CLUSTER_STATES",
    "DESCRIPTION_MAX",
    "USER_PLACEHOLDER",
    "ClusterSpec",
]

CLUSTER_KIND = "cluster"
CLUSTER_STATES = ("off", "connecting", "active", "stopping", "failed")
"""``connecting`` is the spec's ``provisioning`` for an existing cluster (nothing to build);
``active`` and ``failed`` are re-checked periodically, so only ``off`` is settled."""
CLUSTER_SHARE_LEVELS = ("login", "sudo", "writer", "admin")
USER_PLACEHOLDER = "__USER__"
DESCRIPTION_MAX = 100

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^[0-9A-Fa-f:]+$")
_UNIX_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")


class ClusterSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An existing cluster reached over SSH at its login node."""

    type: Literal["existing"] = "existing"
    scheduler: str = "slurm"
    login_host: str = ""
    port: int = 22
    username: str = USER_PLACEHOLDER
    """The remote username; ``__USER__`` becomes the Corral username of whoever connects."""
    jump_host: str = ""
    jump_user: str = ""
    jump_port: int = 22
    working_directory: str = ""
    group: str = ""
    scheduler_config: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.login_host:
            raise Invalid("an existing cluster needs its login host", field="login_host")
        _check_host(self.login_host, "login_host")
        for field in ("port", "jump_port"):
            if not 1 <= getattr(self, field) <= 65535:
                raise Invalid(f"{field} must be between 1 and 65535", field=field)
        _check_user(self.username, "username")
        if self.jump_host or self.jump_user:
            if not self.jump_host:
                raise Invalid("a jump node needs its host as well as its user", field="jump_host")
            if not self.jump_user:
                raise Invalid("a jump node needs its user as well as its host", field="jump_user")
            _check_host(self.jump_host, "jump_host")
            _check_user(self.jump_user, "jump_user")

    def endpoint(self, username: str) -> SSHEndpoint:
        """Where ``username`` signs in, with ``__USER__`` substituted."""
        jump = None
        if self.jump_host:
            jump = SSHEndpoint(
                host=self.jump_host,
                port=self.jump_port,
                username=self.jump_user.replace(USER_PLACEHOLDER, username),
            )
        return SSHEndpoint(
            host=self.login_host,
            port=self.port,
            username=self.username.replace(USER_PLACEHOLDER, username),
            jump=jump,
        )

    def working_directory_for(self, username: str) -> str:
        return self.working_directory.replace(USER_PLACEHOLDER, username)


def _check_host(value: str, field: str) -> None:
    if not _HOST.match(value):
        raise Invalid(f"{field} {value!r} is not a host name or IP address", field=field)


def _check_user(value: str, field: str) -> None:
    if USER_PLACEHOLDER in value:
        value = value.replace(USER_PLACEHOLDER, "user")
    if not _UNIX_USER.match(value):
        raise Invalid(
            f"{field} {value!r} is not a valid username (lowercase letters, digits, '_', '-' "
            "and '.', or __USER__ for each user's own name)",
            field=field,
        )
