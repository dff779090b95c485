"""When each session last carried traffic through the proxy (for idle culling)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from corral_core.db import utcnow

__all__ = ["SessionActivity"]


class SessionActivity(SQLModel, table=True):
    """One row per session that carried traffic; written at most every 30 s per process."""

    __tablename__ = "session_activity"

    resource_id: int = Field(foreign_key="resource.id", primary_key=True, ondelete="CASCADE")
    last_at: datetime = Field(default_factory=utcnow)
