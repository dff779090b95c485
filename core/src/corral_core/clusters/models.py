"""Jobs Corral submitted to clusters' schedulers, and what it last saw of them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from corral_core.db import utcnow

__all__ = ["ClusterJob"]


class ClusterJob(SQLModel, table=True):
    """A batch job on a cluster. ``state`` is Corral's :class:`~corral_sdk.providers.scheduler.
    JobState`; the row is updated by the cluster's poll (one scheduler call per cluster)."""

    __tablename__ = "cluster_job"
    __table_args__ = (
        UniqueConstraint("resource_id", "job_id", name="uq_cluster_job"),
        Index("ix_cluster_job_live", "resource_id", "finished"),
    )

    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", ondelete="CASCADE")
    user_id: int = Field(foreign_key="user_account.id", index=True, ondelete="CASCADE")
    username: str = Field(max_length=255)
    job_id: str = Field(max_length=255)
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
