"""What a cluster is: its definition (the resource's ``spec``), states and share levels."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from corral_core.ssh.pool import SSHEndpoint
from corral_sdk.errors import Invalid
from corral_sdk.wire import CloudClusterDefinition, CloudPartition

__all__ = [
    "CLUSTER_KIND",
    "CLUSTER_SHARE_LEVELS",
    "CLUSTER_STATES",
    "DESCRIPTION_MAX",
    "USER_PLACEHOLDER",
    "CloudClusterSpec",
    "ClusterSpec",
    "ExistingClusterSpec",
]

CLUSTER_KIND = "cluster"
CLUSTER_STATES = (
    "off",
    "connecting",
    "provisioning",
    "active",
    "stopping",
    "stopped",
    "destroying",
    "failed",
)
"""``connecting`` is the spec's ``provisioning`` for an existing cluster (nothing to build);
``provisioning``, ``stopped`` and ``destroying`` are a cloud cluster's. ``active`` and ``failed``
are re-checked periodically, so only ``off`` and ``stopped`` are settled."""
CLUSTER_SHARE_LEVELS = ("login", "sudo", "writer", "admin")
USER_PLACEHOLDER = "__USER__"
DESCRIPTION_MAX = 100

_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$|^[0-9A-Fa-f:]+$")
_UNIX_USER = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")


class ExistingClusterSpec(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="type",
    tag="existing",
):
    """An existing cluster reached over SSH at its login node."""

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


_PARTITION = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_SECONDS_MAX = 7 * 24 * 3600


class CloudClusterSpec(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="type",
    tag="cloud",
):
    """An elastic cluster Corral builds on a cloud account."""

    scheduler: str = "slurm"
    group: str = ""
    scheduler_config: dict[str, Any] = msgspec.field(default_factory=dict)
    cloud: CloudClusterDefinition

    def __post_init__(self) -> None:
        cloud = self.cloud
        if not cloud.cloud_account:
            raise Invalid("a cloud cluster needs its cloud account", field="cloud.cloud_account")
        controller = cloud.controller
        if not 8 <= controller.root_size_gib <= 65536:
            raise Invalid(
                "the controller's root size must be 8 to 65536 GiB",
                field="cloud.controller.root_size_gib",
            )
        if not cloud.partitions:
            raise Invalid("a cloud cluster needs at least one partition", field="cloud.partitions")
        names: set[str] = set()
        for index, partition in enumerate(cloud.partitions):
            where = f"cloud.partitions.{index}"
            if not _PARTITION.match(partition.name) or partition.name.upper() == "DEFAULT":
                raise Invalid(
                    f"partition name {partition.name!r} must be 1 to 32 letters, digits, '-' "
                    "and '_', starting with a letter (and not DEFAULT)",
                    field=f"{where}.name",
                )
            if partition.name in names:
                raise Invalid(
                    f"partition {partition.name!r} is defined twice", field=f"{where}.name"
                )
            names.add(partition.name)
            if not 1 <= partition.max_nodes <= 9999:
                raise Invalid(
                    f"partition {partition.name!r} needs 1 to 9999 max nodes",
                    field=f"{where}.max_nodes",
                )
            if partition.capacity_reservation and not partition.capacity_reservation_id:
                raise Invalid(
                    f"partition {partition.name!r} uses a capacity reservation: give its "
                    "reservation id",
                    field=f"{where}.capacity_reservation_id",
                )
            if partition.capacity_reservation_id and not partition.capacity_reservation:
                raise Invalid(
                    f"partition {partition.name!r} names a capacity reservation: turn "
                    "capacity_reservation on to use it (or leave the id empty)",
                    field=f"{where}.capacity_reservation",
                )
        if len(cloud.partitions) > 1 and sum(p.default for p in cloud.partitions) != 1:
            raise Invalid("exactly one partition must be the default", field="cloud.partitions")
        advanced = cloud.advanced
        for field in ("suspend_time", "resume_timeout", "suspend_timeout"):
            if not 1 <= getattr(advanced, field) <= _SECONDS_MAX:
                raise Invalid(
                    f"{field.replace('_', ' ')} must be 1 to {_SECONDS_MAX} seconds",
                    field=f"cloud.advanced.{field}",
                )

    def working_directory_for(self, username: str) -> str:
        return ""

    def partitions(self) -> list[CloudPartition]:
        """The partitions, the only one forced default."""
        if len(self.cloud.partitions) == 1:
            return [msgspec.structs.replace(self.cloud.partitions[0], default=True)]
        return list(self.cloud.partitions)


ClusterSpec = ExistingClusterSpec | CloudClusterSpec
