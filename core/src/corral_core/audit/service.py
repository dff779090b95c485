"""Writing the audit log."""

from __future__ import annotations

from typing import Any

from corral_core.audit.models import AuditRecord
from corral_core.db import Database

__all__ = ["AuditLog"]


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
            actor=actor,
            action=action,
            target=target,
            org=org,
            source=source,
            outcome=outcome,
            detail=detail or {},
        )
        async with self._db.session() as session:
            session.add(row)
            await session.commit()
            await session.refresh(row)
        return row
