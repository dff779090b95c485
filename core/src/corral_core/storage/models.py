"""The tables of storage: its sessions (one per start), their logs, and users' favourites."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from corral_core.db import utcnow

__all__ = ["StorageFavorite", "StorageLogLine", "StorageSession"]


class StorageSession(SQLModel, table=True):
    """One start of a persistent storage, until its stop: numbered ``00001``... per storage.

    ``uid`` is what the provider names and tags its cloud resources with
    (:attr:`~corral_sdk.providers.storage.StorageSpec.resource_id`): written before the provider
    is first called, so a provision cut short is found again, and unique across Corral
    installations (bucket names are global). ``info`` is the provider's
    :class:`~corral_sdk.providers.storage.StorageInfo` once it returned one.
    ``status``: ``provisioning`` -> ``active`` (or ``failed``) -> ``deleting`` -> ``deleted``.
    """

    __tablename__ = "storage_session"
    __table_args__ = (UniqueConstraint("resource_id", "number", name="uq_storage_session"),)

    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", ondelete="CASCADE", index=True)
    number: int
    uid: str = Field(max_length=32, unique=True)
    status: str = Field(default="provisioning", max_length=16)
    info: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    csp_uri: str = Field(default="", max_length=1024, index=True)
    """How the cloud's tools address it (``s3://<bucket>``), once provisioned."""
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow)
    deleted_at: datetime | None = None


class StorageLogLine(SQLModel, table=True):
    """One line of a session's Provision or Deletion log; ``offset`` numbers a log's lines
    from 0 with no gap, so a follower reads on from where it stopped."""

    __tablename__ = "storage_log"
    __table_args__ = (UniqueConstraint("session_id", "tab", "offset", name="uq_storage_log"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(foreign_key="storage_session.id", ondelete="CASCADE")
    tab: str = Field(max_length=16)
    offset: int
    at: datetime = Field(default_factory=utcnow)
    message: str = Field(sa_column=Column(Text, nullable=False))


class StorageFavorite(SQLModel, table=True):
    """A user's favourite storage (the heart: shown on their dashboard)."""

    __tablename__ = "storage_favorite"
    __table_args__ = (UniqueConstraint("user_id", "resource_id", name="uq_storage_favorite"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", ondelete="CASCADE")
    resource_id: int = Field(foreign_key="resource.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)
