"""Writing the audit log."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from corral_core.audit.models import AuditRecord
from corral_core.db import Database

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
        row = AuditRecord(
            actor=_printable(actor, 255),
            action=_printable(action, 127),
            target=_printable(target, 512),
            org=org,
            source=_printable(source, 255),
            outcome=outcome,
            detail=detail or {},
        )

        def insert(session: Session) -> AuditRecord:
            session.add(row)
            session.flush()  # assigns the id; the row keeps its attributes after the commit
            return row

        return await self._db.transaction(insert)
