"""Host keys Corral has seen, pinned on first use."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from corral_core.db import utcnow

__all__ = ["HostKey"]


class HostKey(SQLModel, table=True):
    """A key a host offered. The first key seen for a ``host:port`` is trusted; a different key
    offered later is kept untrusted until an admin accepts it (which distrusts the old one)."""

    __tablename__ = "ssh_host_key"
    __table_args__ = (UniqueConstraint("host", "port", "fingerprint", name="uq_ssh_host_key"),)

    id: int | None = Field(default=None, primary_key=True)
    host: str = Field(max_length=255, index=True)
    port: int
    public_key: str = Field(sa_column=Column(Text, nullable=False))
    fingerprint: str = Field(max_length=128)
    trusted: bool = False
    first_seen_at: datetime = Field(default_factory=utcnow)
    last_offered_at: datetime = Field(default_factory=utcnow)
    accepted_by: str = Field(default="", max_length=255)
    """Who accepted a changed key (empty for the key pinned on first use)."""
