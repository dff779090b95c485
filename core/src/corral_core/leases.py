"""Named leases: one holder at a time across processes (the periodic sweep, a dispatcher)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, SQLModel, col

from corral_core.db import Database, utcnow

__all__ = ["Lease", "try_acquire_lease"]


class Lease(SQLModel, table=True):
    __tablename__ = "lease"

    name: str = Field(primary_key=True, max_length=127)
    owner: str = Field(max_length=255)
    expires_at: datetime


async def try_acquire_lease(db: Database, name: str, owner: str, seconds: float) -> bool:
    """Take or renew the lease ``name`` for ``seconds``; ``False`` if someone else holds it."""
    now = utcnow()
    expires = now + timedelta(seconds=seconds)
    async with db.session() as session:
        result = await session.exec(
            update(Lease)
            .where(col(Lease.name) == name)
            .where((col(Lease.owner) == owner) | (col(Lease.expires_at) < now))
            .values(owner=owner, expires_at=expires)
        )
        await session.commit()
        if result.rowcount:
            return True
        session.add(Lease(name=name, owner=owner, expires_at=expires))
        try:
            await session.commit()
        except IntegrityError:
            return False
        return True


async def release_lease(db: Database, name: str, owner: str) -> None:
    async with db.session() as session:
        await session.exec(
            delete(Lease).where(col(Lease.name) == name).where(col(Lease.owner) == owner)
        )
        await session.commit()
