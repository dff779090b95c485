"""Audit log table."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from corral_core.db import utcnow

__all__ = ["AuditRecord"]


class AuditRecord(SQLModel, table=True):
    """One state-changing call: who did what to which target, from where, and the outcome."""

    __tablename__ = "audit_event"
    __table_args__ = (Index("ix_audit_org_at", "org", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor: str = Field(max_length=255)
    org: str | None = Field(default=None, max_length=255)
    action: str = Field(max_length=127)
    target: str = Field(default="", max_length=512)
    source: str = Field(default="", max_length=255)
    """Where the call came from: the client address, or ``worker``/``cli``."""
    outcome: str = Field(default="success", max_length=32)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
