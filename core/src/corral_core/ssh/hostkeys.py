"""Pinning host keys on first use, refusing changed ones until an admin accepts them."""

from __future__ import annotations

from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from corral_core.db import Database, utcnow
from corral_core.ssh.models import HostKey
from corral_sdk.errors import NotFound, TransportError

__all__ = ["HostKeyChanged", "HostKeyStore"]


class HostKeyChanged(TransportError):
    """The host offered a key other than the one pinned for it."""

    default_reason = "host-key-changed"

    def __init__(self, host: str, port: int, pinned: list[str], offered: str) -> None:
        where = host if port == 22 else f"{host}:{port}"
        super().__init__(
            f"the host key of {where} has changed: Corral pinned {', '.join(pinned)} but the "
            f"host now offers {offered}. This is refused, because it is what an attacker in the "
            "middle would look like; if the host was reinstalled or its keys rotated, an admin "
            f"can accept the new key (POST /api/ssh/host-keys/accept with host {host!r}, port "
            f"{port} and fingerprint {offered!r})",
            details={"host": host, "port": port, "pinned": pinned, "offered": offered},
        )


class HostKeyStore:
    """The host keys table: what is trusted for each ``host:port``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def close(self) -> None:
        """Close the database engine of the calling loop (the SSH pool's, when it stops)."""
        await self._db.dispose(reader=False)

    async def trusted(self, host: str, port: int) -> list[HostKey]:
        async with self._db.session() as session:
            return list(await session.exec(_trusted(host, port)))

    async def pin_first_use(self, host: str, port: int, public_key: str, fingerprint: str) -> bool:
        """Trust ``public_key`` if nothing is pinned for the host yet. ``False`` when another
        key got pinned first (a concurrent first connection saw a different key)."""
        async with self._db.session() as session:
            session.add(
                HostKey(host=host, port=port, public_key=public_key, fingerprint=fingerprint)
            )
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()  # this key was seen before; fall through to the check
        async with self._db.session() as session:
            trusted = list(await session.exec(_trusted(host, port)))
            if trusted:
                return any(row.fingerprint == fingerprint for row in trusted)
            await session.exec(
                update(HostKey)
                .where(col(HostKey.host) == host, col(HostKey.port) == port)
                .where(col(HostKey.fingerprint) == fingerprint)
                .values(trusted=True, last_offered_at=utcnow())
            )
            await session.commit()
        return True

    async def record_offered(self, host: str, port: int, public_key: str, fingerprint: str) -> None:
        """Keep a refused key so an admin can see and accept it."""
        async with self._db.session() as session:
            existing = await _offered(session, host, port, fingerprint)
            if existing is None:
                session.add(
                    HostKey(host=host, port=port, public_key=public_key, fingerprint=fingerprint)
                )
            else:
                existing.last_offered_at = utcnow()
                session.add(existing)
            try:
                await session.commit()
            except IntegrityError:
                await session.rollback()

    async def accept(self, host: str, port: int, fingerprint: str, actor: str) -> HostKey:
        """Trust a key the host offered, and only it, from now on."""
        async with self._db.session() as session:
            row = await _offered(session, host, port, fingerprint)
            if row is None:
                raise NotFound(f"{host}:{port} never offered a key with fingerprint {fingerprint}")
            await session.exec(
                update(HostKey)
                .where(col(HostKey.host) == host, col(HostKey.port) == port)
                .values(trusted=False)
            )
            row.trusted, row.accepted_by = True, actor
            session.add(row)
            await session.commit()
            await session.refresh(row)
            return row

    async def pin(self, host: str, port: int, public_key: str, fingerprint: str) -> None:
        """Trust ``public_key``, and only it, for ``host:port``: a key Corral made itself (a
        cloud controller's), so nothing is trusted on first use."""
        async with self._db.session() as session:
            await session.exec(
                update(HostKey)
                .where(col(HostKey.host) == host, col(HostKey.port) == port)
                .values(trusted=False)
            )
            row = await _offered(session, host, port, fingerprint)
            if row is None:
                row = HostKey(host=host, port=port, public_key=public_key, fingerprint=fingerprint)
            row.trusted, row.accepted_by = True, "corral"
            session.add(row)
            await session.commit()

    async def list(self, host: str | None = None) -> list[HostKey]:
        query = select(HostKey).order_by(col(HostKey.host), col(HostKey.port), col(HostKey.id))
        if host:
            query = query.where(col(HostKey.host) == host)
        async with self._db.session() as session:
            return list(await session.exec(query))


async def _offered(session: AsyncSession, host: str, port: int, fingerprint: str) -> HostKey | None:
    return (
        await session.exec(
            select(HostKey).where(
                col(HostKey.host) == host,
                col(HostKey.port) == port,
                col(HostKey.fingerprint) == fingerprint,
            )
        )
    ).first()


def _trusted(host: str, port: int) -> Any:
    return (
        select(HostKey)
        .where(col(HostKey.host) == host, col(HostKey.port) == port)
        .where(col(HostKey.trusted).is_(True))
    )
