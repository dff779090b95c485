"""The one table every kind of resource joins."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from corral_core.db import utcnow

__all__ = ["Resource"]


class Resource(SQLModel, table=True):
    """A long-lived thing (cluster, storage, session, run...) owned in a namespace.

    API calls write ``desired_state``/``spec`` and bump ``generation``; reconcilers write
    ``observed_state``, ``observed_generation``, ``status`` and ``reason``. ``lease_owner`` and
    ``lease_expires_at`` make sure one worker reconciles a resource at a time;
    ``next_reconcile_at`` is when the sweep should look at it again (``None``: settled).
    """

    __tablename__ = "resource"
    __table_args__ = (
        UniqueConstraint("owner", "name", name="uq_resource_owner_name"),
        Index("ix_resource_due", "next_reconcile_at"),
        Index("ix_resource_kind", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=63)
    org: str = Field(max_length=255)
    owner: str = Field(max_length=255)
    name: str = Field(max_length=255)
    display_name: str = Field(default="", max_length=255)
    description: str = Field(default="")
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    desired_state: str = Field(max_length=63)
    observed_state: str = Field(max_length=63)
    generation: int = 1
    observed_generation: int = 0
    status: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reason: str = Field(default="")
    attempts: int = 0
    next_reconcile_at: datetime | None = Field(default_factory=utcnow)
    lease_owner: str | None = Field(default=None, max_length=255)
    lease_expires_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
