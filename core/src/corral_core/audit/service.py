"""Writing the audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert as sql_insert
from sqlmodel import Session

from corral_core.audit.models import AuditRecord
from corral_core.db import Database, utcnow

__all__ = ["AuditLog"]


def _printable(text: str, limit: int) -> str:
    """Whatever a caller sent (a NUL, a huge name) is recorded, escaped and cut to fit."""
    escaped = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
    return escaped if len(escaped) <= limit else escaped[: limit - 3] + "..."


class AuditLog:
    """Appends one row per state-changing call; the identity issue adds reading it back."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(
        self,
        *,
        actor: str,
        action: str,
        target: str = "",
        org: str | None = None,
        source: str = "",
        outcome: str = "success",
        detail: dict[str, Any] | None = None,
    ) -> AuditRecord:
        values: dict[str, Any] = {
            "at": utcnow(),
            "actor": _printable(actor, 255),
            "action": _printable(action, 127),
            "target": _printable(target, 512),
            "org": org,
            "source": _printable(source, 255),
            "outcome": outcome,
            "detail": detail or {},
        }

        def insert(session: Session) -> int:
            # a plain INSERT: one row per API call is written on every mutation, and the ORM's
            # unit of work would cost more than the statement itself
            key = session.exec(sql_insert(AuditRecord).values(**values)).inserted_primary_key
            assert key is not None
            return int(key[0])

        return AuditRecord(id=await self._db.transaction(insert), **values)
