"""A storage's sessions: one per start, numbered ``00001``..., each holding what its provider
made; the reconciler opens, records and ends them."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select

from corral_core.db import Database, utcnow
from corral_core.storage.models import StorageSession

__all__ = ["DELETED", "StorageSessions", "session_label"]

DELETED = "deleted"


def session_label(number: int) -> str:
    return f"{number:05d}"


class StorageSessions:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def current(self, resource_id: int) -> StorageSession | None:
        """The session not yet deleted, if any (there is at most one)."""
        async with self.db.session() as session:
            return (
                await session.exec(
                    select(StorageSession)
                    .where(col(StorageSession.resource_id) == resource_id)
                    .where(col(StorageSession.status) != DELETED)
                    .order_by(col(StorageSession.number).desc())
                )
            ).first()

    async def open(self, resource_id: int) -> tuple[StorageSession, bool]:
        """The current session, or a new one numbered after the last (with the ``uid`` the
        provider names its resources by); ``True`` when it is new. Only the reconcile holding
        the resource's lease calls this."""
        async with self.db.session() as session:
            found = (
                await session.exec(
                    select(StorageSession)
                    .where(col(StorageSession.resource_id) == resource_id)
                    .where(col(StorageSession.status) != DELETED)
                )
            ).first()
            if found is not None:
                return found, False
            last = (
                await session.exec(
                    select(func.max(StorageSession.number)).where(
                        col(StorageSession.resource_id) == resource_id
                    )
                )
            ).one()
            row = StorageSession(
                resource_id=resource_id, number=int(last or 0) + 1, uid=uuid.uuid4().hex[:24]
            )
            session.add(row)
            await session.commit()
            await session.refresh(row)
            return row, True

    async def set(self, session_id: int, **values: Any) -> None:
        async with self.db.session() as session:
            await session.exec(
                update(StorageSession).where(col(StorageSession.id) == session_id).values(**values)
            )
            await session.commit()

    async def end(self, session_id: int) -> None:
        await self.set(session_id, status=DELETED, deleted_at=utcnow())

    async def history(self, resource_id: int) -> list[StorageSession]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(StorageSession)
                .where(col(StorageSession.resource_id) == resource_id)
                .order_by(col(StorageSession.number).desc())
            )
            return list(rows)

    async def get(self, resource_id: int, number: int) -> StorageSession | None:
        async with self.db.session() as session:
            return (
                await session.exec(
                    select(StorageSession)
                    .where(col(StorageSession.resource_id) == resource_id)
                    .where(col(StorageSession.number) == number)
                )
            ).first()

    async def by_csp_uri(self, uri: str) -> list[StorageSession]:
        """Sessions not deleted whose storage the cloud's tools address as ``uri``."""
        async with self.db.session() as session:
            rows = await session.exec(
                select(StorageSession)
                .where(col(StorageSession.csp_uri) == uri)
                .where(col(StorageSession.status) != DELETED)
            )
            return list(rows)
