"""A storage session's Provision and Deletion logs: durable lines (time and message), written
as the kernel and the provider report progress, read from an offset by followers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import func
from sqlmodel import col, select

from corral_core.db import Database
from corral_core.storage.models import StorageLogLine
from corral_sdk.providers._common import StepState

__all__ = ["DELETION", "LOG_TABS", "PROVISION", "SessionLog", "format_line", "read_log"]

PROVISION = "provision"
DELETION = "deletion"
LOG_TABS = (PROVISION, DELETION)


def format_line(at: datetime, message: str) -> str:
    """A line as shown and downloaded: ``2024-06-21T19:55:38.513: Ready to start``."""
    return f"{at.replace(tzinfo=None).isoformat(timespec='milliseconds')}: {message}"


class SessionLog:
    """One tab of one session's log; the SDK's ``ProgressLog`` for providers. Every line also
    calls ``heartbeat`` (the reconcile's lease lasts while the provider reports progress)."""

    def __init__(
        self,
        db: Database,
        session_id: int,
        tab: str,
        heartbeat: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.db, self.session_id, self.tab, self._heartbeat = db, session_id, tab, heartbeat

    async def log(self, message: str) -> None:
        for line in message.splitlines() or [""]:
            await self._append(line)
        if self._heartbeat is not None:
            await self._heartbeat()

    async def step(self, name: str, state: StepState, detail: str = "") -> None:
        await self.log(f"{name}: {state}" + (f" ({detail})" if detail else ""))

    async def _append(self, message: str) -> None:
        async with self.db.session() as session:
            last = (
                await session.exec(
                    select(func.max(StorageLogLine.offset))
                    .where(col(StorageLogLine.session_id) == self.session_id)
                    .where(col(StorageLogLine.tab) == self.tab)
                )
            ).one()
            session.add(
                StorageLogLine(
                    session_id=self.session_id,
                    tab=self.tab,
                    offset=0 if last is None else last + 1,
                    message=message,
                )
            )
            await session.commit()


async def read_log(
    db: Database, session_id: int, tab: str, offset: int = 0, limit: int = 1000
) -> list[StorageLogLine]:
    async with db.session() as session:
        rows = await session.exec(
            select(StorageLogLine)
            .where(col(StorageLogLine.session_id) == session_id)
            .where(col(StorageLogLine.tab) == tab)
            .where(col(StorageLogLine.offset) >= offset)
            .order_by(col(StorageLogLine.offset))
            .limit(limit)
        )
        return list(rows)
