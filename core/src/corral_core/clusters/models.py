"""Jobs Corral submitted to clusters' schedulers, and what it last saw of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from corral_core.db import utcnow

__all__ = [
    "CapacityReservationRecord",
    "CloudAccountGrant",
    "CloudAccountRecord",
    "ClusterJob",
    "ClusterNode",
    "ClusterSession",
    "OrgInstancePolicy",
    "ProvisionStep",
]


class ClusterJob(SQLModel, table=True):
    """A batch job on a cluster. ``state`` is Corral's :class:`~corral_sdk.providers.scheduler.
    JobState`; the row is updated by the cluster's poll (one scheduler call per cluster)."""

    __tablename__ = "cluster_job"
    __table_args__ = (
        UniqueConstraint("resource_id", "session", "job_id", name="uq_cluster_job"),
        Index("ix_cluster_job_live", "resource_id", "finished"),
    )

    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    username: str = Field(max_length=255)
    job_id: str = Field(max_length=255)
    session: int = 0
    """A cloud cluster's session (its scheduler numbers jobs afresh at each start); 0 else."""
    """The scheduler's id."""
    name: str = Field(default="", max_length=255)
    state: str = Field(default="pending", max_length=32)
    native_state: str = Field(default="", max_length=64)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    exit_code: int | None = None
    partition: str = Field(default="", max_length=255)
    nodes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    output_path: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    finished: bool = False
    """The state is terminal: polls skip the job."""
    submitted_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    ended_at: datetime | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class CloudAccountRecord(SQLModel, table=True):
    """A set of cloud credentials of an organization, with the provider that uses them.

    ``credentials`` is the provider's credentials struct as JSON, encrypted with the platform
    key; it is decrypted only to hand it to the provider for one call."""

    __tablename__ = "cloud_account"
    __table_args__ = (UniqueConstraint("org", "name", name="uq_cloud_account"),)

    id: int | None = Field(default=None, primary_key=True)
    org: str = Field(max_length=255)
    name: str = Field(max_length=63)
    provider: str = Field(max_length=63)
    govcloud: bool = False
    settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    credentials: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    principal: str = Field(default="", max_length=255)
    permissions: str = Field(default="unchecked", max_length=32)
    """The last validation: ``checking`` (queued or running), ``sufficient``, ``insufficient``
    or ``error`` (the credentials did not authenticate, or the cloud could not be asked)."""
    message: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    missing_permissions: list[str] = Field(
        default_factory=list, sa_column=Column(JSON, nullable=False)
    )
    guide_url: str = Field(default="", max_length=1024)
    validation: int = 0
    """How many validations were asked for; a check records its result only if it is still the
    latest one asked for (an update during a check starts another)."""
    validated_at: datetime | None = None
    created_by: str = Field(default="", max_length=255)
    credentials_updated_at: datetime = Field(default_factory=utcnow)
    created_at: datetime = Field(default_factory=utcnow)
    deleting_at: datetime | None = None
    """Set when a delete was accepted while the account still had networks: they are
    deprovisioned first (with these credentials), then the account row goes."""


class OrgInstancePolicy(SQLModel, table=True):
    """An organization's allowed instance types (Cloud > Instance Types).

    ``mode`` ``default`` allows every type; ``custom`` restricts each cloud provider named in
    ``allowed`` (``{"aws": ["c6a.4xlarge"]}``) to its list, an empty list allowing none of that
    provider's types. Providers not named are not restricted."""

    __tablename__ = "org_instance_policy"

    org_id: int = Field(foreign_key="org.id", primary_key=True, ondelete="CASCADE")
    mode: str = Field(default="default", max_length=16)
    allowed: dict[str, list[str]] = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False)
    )
    updated_by: str = Field(default="", max_length=255)
    updated_at: datetime = Field(default_factory=utcnow)


class CapacityReservationRecord(SQLModel, table=True):
    """A capacity reservation made in a cloud's console, mapped to exactly one group of the
    organization: only its members' clusters may use it, and its costs go to that group."""

    __tablename__ = "capacity_reservation"
    __table_args__ = (UniqueConstraint("org_id", "reservation_id", name="uq_capacity_reservation"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="org.id", index=True, ondelete="CASCADE")
    reservation_id: str = Field(max_length=255)
    group_id: int = Field(foreign_key="user_group.id", index=True, ondelete="CASCADE")
    description: str = Field(default="", max_length=255)
    created_by: str = Field(default="", max_length=255)
    created_at: datetime = Field(default_factory=utcnow)


class CloudAccountGrant(SQLModel, table=True):
    """A cloud account's ``network`` permission held by a group, or by the whole organization
    (``group_id`` is ``None``): its members create and manage networks on the account and start
    clusters on them. New accounts have none (only org admins use them)."""

    __tablename__ = "cloud_account_grant"
    __table_args__ = (
        UniqueConstraint("account_id", "group_id", "permission", name="uq_cloud_account_grant"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="cloud_account.id", index=True, ondelete="CASCADE")
    group_id: int | None = Field(
        default=None, foreign_key="user_group.id", index=True, ondelete="CASCADE"
    )
    permission: str = Field(default="network", max_length=32)
    created_at: datetime = Field(default_factory=utcnow)


class ClusterSession(SQLModel, table=True):
    """One start of a cloud cluster: its number (in its hosts' names), its secrets and where
    its controller is. A destroy ends it; the next start makes the next one."""

    __tablename__ = "cluster_session"
    __table_args__ = (UniqueConstraint("resource_id", "number", name="uq_cluster_session"),)

    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", ondelete="CASCADE", index=True)
    number: int
    secrets: str = Field(sa_column=Column(Text, nullable=False))
    """Encrypted JSON: the hosts' shared auth key, Corral's root key, the controller host key."""
    token_hash: str = Field(max_length=64, index=True)
    """SHA-256 of the bearer token the cluster's hosts call back with."""
    controller_name: str = Field(default="", max_length=255)
    controller_id: str = Field(default="", max_length=255)
    controller_address: str = Field(default="", max_length=255)
    bootstrap_status: int | None = None
    bootstrap_output: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None


class ClusterNode(SQLModel, table=True):
    """An elastic node of a cloud cluster's session that its scheduler asked for.

    ``wanted`` is what the scheduler asked (up or down); ``state`` is how far Corral got:
    ``requested`` → ``creating`` → ``running`` → ``deleting`` → ``gone`` (or ``failed``).
    ``batch`` is the idempotency key of the create call that makes it, kept across crashes.
    """

    __tablename__ = "cluster_node"
    __table_args__ = (
        UniqueConstraint("resource_id", "session", "name", name="uq_cluster_node"),
        Index("ix_cluster_node_live", "resource_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", ondelete="CASCADE")
    session: int
    name: str = Field(max_length=255)
    partition: str = Field(max_length=255)
    wanted: str = Field(default="up", max_length=16)
    state: str = Field(default="requested", max_length=16)
    batch: str = Field(default="", max_length=128)
    instance_id: str = Field(default="", max_length=255)
    address: str = Field(default="", max_length=255)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    lease_until: datetime | None = None
    requested_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class ProvisionStep(SQLModel, table=True):
    """A step of a cloud cluster session's provisioning log (tabs: provision, deletion,
    scheduler)."""

    __tablename__ = "cluster_step"
    __table_args__ = (
        UniqueConstraint("resource_id", "session", "log", "name", name="uq_cluster_step"),
    )

    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", ondelete="CASCADE", index=True)
    session: int
    log: str = Field(max_length=16)
    name: str = Field(max_length=255)
    state: str = Field(max_length=16)
    detail: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    position: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
