"""Workflows' versions and favourites, and runs with their jobs, steps and log lines.

A workflow itself is a resource of kind ``workflow`` (its name, owner, sharing, description and
tags live there); ``workflow_version`` keeps each YAML it had. A run is driven by the engine
under a lease (``lease_owner``/``lease_until``), so a killed worker's runs are taken up again;
its steps run detached on their target with their exit status written there, and ``handle``
says where, so a run reattaches instead of starting a step twice.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from corral_core.db import utcnow

__all__ = [
    "RUN_STATUSES",
    "RunJob",
    "RunLogLine",
    "RunStep",
    "WorkflowFavorite",
    "WorkflowRun",
    "WorkflowVersion",
]

RUN_STATUSES = ("queued", "running", "completed", "error", "canceled")
"""A run's statuses (spec §2.2, lower-case in the API); the last three are terminal."""


class WorkflowVersion(SQLModel, table=True):
    """One saved YAML of a workflow; a run records the version it ran."""

    __tablename__ = "workflow_version"
    __table_args__ = (UniqueConstraint("resource_id", "version", name="uq_workflow_version"),)

    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", ondelete="CASCADE")
    version: int
    yaml: str = Field(sa_column=Column(Text, nullable=False))
    created_by: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow)


class WorkflowFavorite(SQLModel, table=True):
    __tablename__ = "workflow_favorite"
    __table_args__ = (UniqueConstraint("user_id", "resource_id", name="uq_workflow_favorite"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user_account.id", ondelete="CASCADE")
    resource_id: int = Field(foreign_key="resource.id", ondelete="CASCADE")
    created_at: datetime = Field(default_factory=utcnow)


class WorkflowRun(SQLModel, table=True):
    """A run: numbered per workflow (``00001``), with the YAML and inputs it ran with."""

    __tablename__ = "workflow_run"
    __table_args__ = (
        UniqueConstraint("resource_id", "number", name="uq_workflow_run_number"),
        Index("ix_workflow_run_due", "finished", "next_check_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", ondelete="CASCADE")
    number: int
    slug: str = Field(max_length=255, unique=True)
    org: str = Field(max_length=255)
    username: str = Field(max_length=255)
    """Who ran it: steps run as this user."""
    version: int = 0
    """The workflow version it ran (0: fetched from a remote URL)."""
    yaml: str = Field(sa_column=Column(Text, nullable=False))
    inputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Values as the steps see them, passwords replaced by a mask."""
    secret_inputs: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    """Password inputs, encrypted with the platform key."""
    plan: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="queued", max_length=16)
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    cancel_requested: bool = False
    finished: bool = False
    parent_run_id: int | None = Field(default=None, foreign_key="workflow_run.id")
    """The run whose step started this one (``uses: workflow/...``)."""
    parent_step_id: int | None = None
    """That step (with ``parent_attempt``: a retried step starts a new run)."""
    parent_attempt: int = 0
    depth: int = 1
    log_count: int = 0
    """Log lines written so far (the next line's offset)."""
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    next_check_at: datetime | None = Field(default_factory=utcnow)
    lease_owner: str | None = Field(default=None, max_length=64)
    lease_until: datetime | None = None


class RunJob(SQLModel, table=True):
    """A job of a run (a matrix instance counts as one)."""

    __tablename__ = "workflow_run_job"
    __table_args__ = (UniqueConstraint("run_id", "name", name="uq_workflow_run_job"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="workflow_run.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=255)
    job: str = Field(max_length=255)
    position: int = 0
    matrix: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    needs: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="pending", max_length=16)
    """pending, running, completed, error, canceled or skipped."""
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    outputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    cancel_requested: bool = False
    """Set by ``cancel-jobs``: the job ends ``canceled`` (its cleanups still run)."""
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunStep(SQLModel, table=True):
    """A step of a run's job, or a cleanup step (``kind``); retries are attempts of one row."""

    __tablename__ = "workflow_run_step"
    __table_args__ = (
        UniqueConstraint("run_job_id", "position", name="uq_workflow_run_step"),
        Index("ix_workflow_run_step_run", "run_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="workflow_run.id", ondelete="CASCADE")
    run_job_id: int = Field(foreign_key="workflow_run_job.id", ondelete="CASCADE")
    position: int
    index: int
    """The step's index in the YAML's job (a cleanup keeps its step's index)."""
    kind: str = Field(default="step", max_length=16)
    name: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    status: str = Field(default="pending", max_length=16)
    attempt: int = 0
    exit_status: int | None = None
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    outputs: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    target: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    """Where it runs: the workspace, or a cluster and host over SSH."""
    handle: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    """The step's directory on its target (its script, output and exit status)."""
    started_at: datetime | None = None
    finished_at: datetime | None = None


class RunLogLine(SQLModel, table=True):
    """One line of a run's log; ``offset`` numbers a run's lines from 0, with no gap."""

    __tablename__ = "workflow_run_log"
    __table_args__ = (UniqueConstraint("run_id", "offset", name="uq_workflow_run_log"),)

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="workflow_run.id", ondelete="CASCADE")
    offset: int
    job: str = Field(default="", max_length=255)
    step: int | None = None
    at: datetime = Field(default_factory=utcnow)
    line: str = Field(sa_column=Column(Text, nullable=False))
