"""Storage types (buckets, disks, NFS, Lustre...): provision, mount, credentials, transfer,
snapshots.

A storage plugin registers a :class:`~corral_sdk.records.StorageTypeRecord` whose factory is
called with no arguments; ``config`` is the struct of the type's options (region, size, tier...),
decoded by the kernel and passed in :attr:`StorageSpec.options`. Providers are stateless: the kernel
stores the :class:`StorageInfo` a provision returns and hands it back to every later call.

Errors: options that break a rule raise :class:`~corral_sdk.errors.Invalid` with ``field``
(``"throughput"``); a storage that is not active when it must be raises
:class:`~corral_sdk.errors.Conflict`; cloud and transport failures as in
:mod:`corral_sdk.providers.cloud`.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import msgspec

from corral_sdk.errors import Invalid
from corral_sdk.features import StorageFeature
from corral_sdk.providers._common import (
    ProgressLog,
    redacted_repr,
    unsupported,
    unsupported_default,
    unsupported_stream,
)
from corral_sdk.providers.cloud import CloudAccount
from corral_sdk.transport import CommandRunner

__all__ = [
    "STORAGE_FEATURE_METHODS",
    "MountInstructions",
    "MountRequest",
    "SnapshotState",
    "StorageBase",
    "StorageInfo",
    "StorageObject",
    "StorageSnapshot",
    "StorageSpec",
    "StorageState",
    "StorageType",
    "TemporaryCredentials",
    "TransferDirection",
    "TransferRequest",
    "TransferResult",
]


class StorageSpec(msgspec.Struct, frozen=True, kw_only=True):
    """One storage resource as the kernel hands it to its type."""

    name: str
    resource_id: str
    """Corral's stable id of the resource: tag cloud resources with it so that a repeated
    provision finds what an earlier one created."""
    options: Any = None
    """An instance of the record's ``config`` struct (``None`` without one)."""
    account: CloudAccount | None = None
    """The cloud account it lives in; ``None`` for storage outside any cloud (an NFS server)."""
    ephemeral: bool = False
    """Created and destroyed with the cluster it is attached to."""
    restore_snapshot_id: str | None = None
    """Create the new disk from this snapshot (same storage type only)."""
    tags: dict[str, str] = msgspec.field(default_factory=dict)


class StorageState(enum.StrEnum):
    """The observed state of a storage resource at its provider."""

    PROVISIONING = "provisioning"
    AVAILABLE = "available"
    DELETING = "deleting"
    DELETED = "deleted"
    FAILED = "failed"
    UNKNOWN = "unknown"


class StorageInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A provisioned storage resource; the kernel keeps it and passes it back."""

    id: str
    """The provider's id (a bucket name, a volume id, a file system id)."""
    state: StorageState
    uri: str = ""
    """How tools address it (``s3://bucket``, ``nfs://10.0.0.4/export``)."""
    region: str = ""
    zone: str = ""
    """Empty for zone-agnostic storage (Azure ``Automatic``)."""
    size_gib: float | None = None
    details: dict[str, str] = msgspec.field(default_factory=dict)


class MountRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Where and how to mount a storage on a cluster's nodes."""

    mount_point: str
    read_only: bool = False
    owner: str | None = None
    """The user who should own the mount point, where the file system allows it."""
    options: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.mount_point.startswith("/"):
            raise Invalid("the mount point must be an absolute path", field="mount_point")


class MountInstructions(msgspec.Struct, frozen=True, kw_only=True):
    """Shell commands that mount a storage on one node; the kernel runs them as root on the
    controller and every compute node (and again when nodes are replaced), so they must be
    idempotent."""

    filesystem: str
    """``nfs``, ``lustre``, ``fuse``, ``ext4``..., shown as the mount's type."""
    mount_point: str
    commands: tuple[str, ...]
    unmount_commands: tuple[str, ...] = ()
    packages: tuple[str, ...] = ()
    """OS packages the commands need (``nfs-utils``, ``s3fs``)."""
    secret_env: dict[str, str] = msgspec.field(default_factory=dict)
    """Environment the commands receive that must never be logged (FUSE credentials)."""

    def __repr__(self) -> str:
        return redacted_repr(self, frozenset({"secret_env"}))


class TemporaryCredentials(msgspec.Struct, frozen=True, kw_only=True):
    """Short-lived credentials for a bucket, with ready-made commands for its CLI."""

    env: dict[str, str]
    """Environment variables holding the credentials (``AWS_ACCESS_KEY_ID``...) and what the
    cloud's CLI needs besides (``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_S3``)."""
    expires_at: datetime
    uri: str = ""
    commands: tuple[str, ...] = ()
    """Example commands (``aws s3 ls s3://bucket``) for users to copy."""
    credentials: dict[str, str] = msgspec.field(default_factory=dict)
    """The same credentials under the names a workflow's ``bucket`` input gives them
    (``accessKeyId``, ``secretAccessKey``, ``sessionToken`` for AWS; ``oauth2Token`` and
    ``projectId`` for Google; ``clientId``, ``clientSecret``, ``tenantId``,
    ``subscriptionId`` for Azure)."""
    bucket_name: str = ""
    """The bucket's name at the cloud."""
    region: str = ""
    endpoint_url: str = ""
    """Where the cloud's API is reached when it is not the public default (an emulator, a
    GovCloud or VPC endpoint); empty for the default."""

    def __repr__(self) -> str:
        return redacted_repr(self, frozenset({"env", "credentials"}))


class TransferDirection(enum.StrEnum):
    UPLOAD = "upload"
    """From the runner's machine into the storage."""
    DOWNLOAD = "download"
    """From the storage onto the runner's machine."""


class TransferRequest(msgspec.Struct, frozen=True, kw_only=True):
    direction: TransferDirection
    local_path: str
    """A path on the machine of the runner passed to :meth:`StorageType.transfer`."""
    remote_path: str = ""
    """A key or prefix inside the storage (empty: its root)."""
    recursive: bool = False


class TransferResult(msgspec.Struct, frozen=True, kw_only=True):
    files: int | None = None
    bytes: int | None = None
    message: str = ""


class StorageObject(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a bucket listing."""

    key: str
    size: int = 0
    modified_at: datetime | None = None
    is_prefix: bool = False
    """A "directory" in a non-recursive listing."""


class SnapshotState(enum.StrEnum):
    PENDING = "pending"
    AVAILABLE = "available"
    FAILED = "failed"
    DELETED = "deleted"


class StorageSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A point-in-time copy of a disk (holds no OS; see cloud OS snapshots for that)."""

    id: str
    name: str
    state: SnapshotState
    source_id: str = ""
    size_gib: float | None = None
    region: str = ""
    created_at: datetime | None = None


@runtime_checkable
class StorageType(Protocol):
    """What a storage plugin implements. See the module docstring for construction and errors.

    Methods in :data:`STORAGE_FEATURE_METHODS` are needed only with their feature;
    :class:`StorageBase` gives "unsupported" defaults for them.
    """

    async def validate(self, spec: StorageSpec) -> None:
        """Check ``spec.options`` against the type's rules without touching the cloud (gp3
        needs a throughput; FSx capacity steps; only some types may be ephemeral) and raise
        ``Invalid`` naming the field."""
        ...

    async def estimate_cost(self, spec: StorageSpec) -> Decimal | None:
        """The hourly cost in USD of the storage as specified, or ``None`` when unknown."""
        ...

    async def provision(self, spec: StorageSpec, *, log: ProgressLog) -> StorageInfo:
        """Create the storage (or find the one an earlier call created for
        ``spec.resource_id``) and return it; it may still be ``provisioning``. A name that is
        taken globally (Azure, buckets) raises ``Conflict``."""
        ...

    async def describe(self, spec: StorageSpec, info: StorageInfo) -> StorageInfo:
        """Observe the storage now; a storage that no longer exists comes back ``deleted``."""
        ...

    async def deprovision(self, spec: StorageSpec, info: StorageInfo, *, log: ProgressLog) -> None:
        """Delete the storage and its data. Idempotent."""
        ...

    # --- StorageFeature.MOUNT

    async def mount_instructions(
        self, spec: StorageSpec, info: StorageInfo, request: MountRequest
    ) -> MountInstructions:
        """The commands that mount the storage at ``request.mount_point`` on a node."""
        ...

    # --- StorageFeature.TEMPORARY_CREDENTIALS

    async def temporary_credentials(
        self,
        spec: StorageSpec,
        info: StorageInfo,
        *,
        read_only: bool = False,
        ttl_seconds: int | None = None,
    ) -> TemporaryCredentials:
        """Short-lived credentials scoped to this storage only (AWS 12 h, Google 1 h by
        default). Raises ``Conflict`` when the storage is not active."""
        ...

    # --- StorageFeature.TRANSFER

    async def transfer(
        self,
        spec: StorageSpec,
        info: StorageInfo,
        request: TransferRequest,
        *,
        runner: CommandRunner,
        log: ProgressLog,
    ) -> TransferResult:
        """Copy data between the storage and the machine of ``runner`` (the cloud's CLI run
        there with temporary credentials). A missing source raises ``NotFound``."""
        ...

    # --- StorageFeature.OBJECT_LISTING

    def list_objects(
        self, spec: StorageSpec, info: StorageInfo, *, prefix: str = "", recursive: bool = False
    ) -> AsyncIterator[StorageObject]:
        """Yield the objects under ``prefix``, page by page as the cloud returns them."""
        ...

    async def delete_object(self, spec: StorageSpec, info: StorageInfo, key: str) -> None:
        """Delete one object; idempotent."""
        ...

    # --- StorageFeature.SNAPSHOTS

    async def create_snapshot(
        self,
        spec: StorageSpec,
        info: StorageInfo,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        log: ProgressLog,
    ) -> StorageSnapshot:
        """Start a snapshot of an active disk and return it (``pending``). Idempotent on
        ``name``. Raises ``Conflict`` when the disk is not active."""
        ...

    async def describe_snapshot(self, spec: StorageSpec, snapshot_id: str) -> StorageSnapshot:
        """Observe a snapshot; one that no longer exists comes back ``deleted``."""
        ...

    async def delete_snapshot(self, spec: StorageSpec, snapshot_id: str) -> None:
        """Delete a snapshot; idempotent."""
        ...

    # --- StorageFeature.RESIZE

    async def resize(
        self, spec: StorageSpec, info: StorageInfo, size_gib: float, *, log: ProgressLog
    ) -> StorageInfo:
        """Grow the storage to ``size_gib``. Shrinking raises ``Invalid``."""
        ...


STORAGE_FEATURE_METHODS: Mapping[StorageFeature, tuple[str, ...]] = MappingProxyType(
    {
        StorageFeature.MOUNT: ("mount_instructions",),
        StorageFeature.TEMPORARY_CREDENTIALS: ("temporary_credentials",),
        StorageFeature.TRANSFER: ("transfer",),
        StorageFeature.SNAPSHOTS: ("create_snapshot", "describe_snapshot", "delete_snapshot"),
        StorageFeature.RESIZE: ("resize",),
        StorageFeature.OBJECT_LISTING: ("list_objects", "delete_object"),
    }
)
"""The methods each :class:`~corral_sdk.features.StorageFeature` needs."""


class StorageBase:
    """Optional mixin: every feature method raises ``ProviderError(reason="unsupported")``."""

    @unsupported_default
    async def mount_instructions(
        self, spec: StorageSpec, info: StorageInfo, request: MountRequest
    ) -> MountInstructions:
        raise unsupported(self, "mount_instructions")

    @unsupported_default
    async def temporary_credentials(
        self,
        spec: StorageSpec,
        info: StorageInfo,
        *,
        read_only: bool = False,
        ttl_seconds: int | None = None,
    ) -> TemporaryCredentials:
        raise unsupported(self, "temporary_credentials")

    @unsupported_default
    async def transfer(
        self,
        spec: StorageSpec,
        info: StorageInfo,
        request: TransferRequest,
        *,
        runner: CommandRunner,
        log: ProgressLog,
    ) -> TransferResult:
        raise unsupported(self, "transfer")

    @unsupported_default
    def list_objects(
        self, spec: StorageSpec, info: StorageInfo, *, prefix: str = "", recursive: bool = False
    ) -> AsyncIterator[StorageObject]:
        return unsupported_stream(self, "list_objects")

    @unsupported_default
    async def delete_object(self, spec: StorageSpec, info: StorageInfo, key: str) -> None:
        raise unsupported(self, "delete_object")

    @unsupported_default
    async def create_snapshot(
        self,
        spec: StorageSpec,
        info: StorageInfo,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        log: ProgressLog,
    ) -> StorageSnapshot:
        raise unsupported(self, "create_snapshot")

    @unsupported_default
    async def describe_snapshot(self, spec: StorageSpec, snapshot_id: str) -> StorageSnapshot:
        raise unsupported(self, "describe_snapshot")

    @unsupported_default
    async def delete_snapshot(self, spec: StorageSpec, snapshot_id: str) -> None:
        raise unsupported(self, "delete_snapshot")

    @unsupported_default
    async def resize(
        self, spec: StorageSpec, info: StorageInfo, size_gib: float, *, log: ProgressLog
    ) -> StorageInfo:
        raise unsupported(self, "resize")
