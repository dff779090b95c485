"""Event log tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from corral_core.db import utcnow

__all__ = ["EventCursor", "EventRecord"]


class EventRecord(SQLModel, table=True):
    """One event, appended once and never changed; ``id`` is the followers' offset."""

    __tablename__ = "event"
    __table_args__ = (Index("ix_event_subject", "subject"),)

    id: int | None = Field(default=None, primary_key=True)
    type: str = Field(max_length=127)
    subject: str = Field(default="", max_length=255)
    org: str | None = Field(default=None, max_length=255)
    actor: str | None = Field(default=None, max_length=255)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)


class EventCursor(SQLModel, table=True):
    """How far a consumer (``plugins``, a webhook dispatcher...) has read the event log."""

    __tablename__ = "event_cursor"

    consumer: str = Field(primary_key=True, max_length=127)
    last_id: int = 0
    updated_at: datetime = Field(default_factory=utcnow)
