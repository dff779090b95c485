"""The event log: appended durably first, then announced to live followers.

Followers never rely on the announcement for content: they read the log from their offset, so a
reconnecting follower misses nothing. Announcements go through in-process queues (embedded mode)
or Redis pub/sub (distributed mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from sqlmodel import Session, col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from corral_core.db import Database, utcnow
from corral_core.events.models import EventRecord
from corral_sdk.events import Event

__all__ = ["EventLog", "InProcessPubSub", "PubSub", "RedisPubSub", "to_event"]

log = logging.getLogger("corral.events")

EVENTS_CHANNEL = "events"


class PubSub(Protocol):
    """Fire-and-forget announcements on named channels."""

    async def publish(self, channel: str, message: str) -> None: ...

    def subscribe(self, channel: str) -> AsyncIterator[str]: ...

    async def close(self) -> None: ...


class InProcessPubSub:
    """Announcements between the tasks and threads of one process."""

    def __init__(self) -> None:
        self._subscribers: dict[
            str, list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[str]]]
        ] = {}

    async def publish(self, channel: str, message: str) -> None:
        for loop, queue in list(self._subscribers.get(channel, [])):
            with contextlib.suppress(RuntimeError):  # the subscriber's loop has closed
                loop.call_soon_threadsafe(queue.put_nowait, message)

    async def subscribe(self, channel: str) -> AsyncIterator[str]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        entry = (asyncio.get_running_loop(), queue)
        self._subscribers.setdefault(channel, []).append(entry)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers[channel].remove(entry)

    async def close(self) -> None:
        self._subscribers.clear()


class RedisPubSub:
    """Announcements across processes and machines through Redis pub/sub."""

    def __init__(self, url: str, namespace: str) -> None:
        self._url = url
        self._prefix = f"{namespace}:"
        self._clients: dict[asyncio.AbstractEventLoop, Any] = {}

    def _client(self) -> Any:
        import redis.asyncio as redis

        loop = asyncio.get_running_loop()
        if loop not in self._clients:
            self._clients[loop] = redis.Redis.from_url(self._url)
        return self._clients[loop]

    async def publish(self, channel: str, message: str) -> None:
        await self._client().publish(self._prefix + channel, message)

    async def subscribe(self, channel: str) -> AsyncIterator[str]:
        pubsub = self._client().pubsub()
        await pubsub.subscribe(self._prefix + channel)
        try:
            async for item in pubsub.listen():
                if item.get("type") == "message":
                    data = item["data"]
                    yield data.decode() if isinstance(data, bytes) else str(data)
        finally:
            await pubsub.unsubscribe()
            await pubsub.aclose()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()


def to_event(row: EventRecord) -> Event:
    assert row.id is not None
    return Event(
        id=row.id,
        type=row.type,
        subject=row.subject,
        org=row.org,
        actor=row.actor,
        data=dict(row.data),
        created_at=row.created_at,
    )


class EventLog:
    """Append events, read them from an offset, and follow them live."""

    def __init__(
        self, db: Database, pubsub: PubSub, on_appended: Callable[[], Any] | None = None
    ) -> None:
        self._db = db
        self._pubsub = pubsub
        self._on_appended = on_appended

    @staticmethod
    def add(
        session: AsyncSession | Session,
        type: str,
        *,
        subject: str = "",
        org: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> EventRecord:
        """Add an event to ``session``'s transaction; call :meth:`announce` after committing."""
        row = EventRecord(
            type=type, subject=subject, org=org, actor=actor, data=data or {}, created_at=utcnow()
        )
        session.add(row)
        return row

    async def emit(
        self,
        type: str,
        *,
        subject: str = "",
        org: str | None = None,
        actor: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        """Append one event in its own transaction and announce it."""
        async with self._db.session() as session:
            row = self.add(session, type, subject=subject, org=org, actor=actor, data=data)
            await session.commit()
            await session.refresh(row)
        event = to_event(row)
        await self.announce(event.id)
        return event

    async def announce(self, event_id: int) -> None:
        """Tell live followers and the plugin dispatcher that the log has grown."""
        try:
            await self._pubsub.publish(EVENTS_CHANNEL, str(event_id))
        except Exception:  # the log is durable; followers catch up by offset
            log.warning("could not announce event %s", event_id, exc_info=True)
        if self._on_appended is not None:
            await self._on_appended()

    async def read(self, after: int = 0, limit: int = 500) -> list[Event]:
        async with self._db.session() as session:
            rows = await session.exec(
                select(EventRecord)
                .where(col(EventRecord.id) > after)
                .order_by(col(EventRecord.id))
                .limit(limit)
            )
            return [to_event(row) for row in rows]

    async def follow(self, after: int = 0, poll_seconds: float = 5.0) -> AsyncIterator[Event]:
        """Every event after ``after``, then new ones as they come, forever, in order."""
        announcements = self._pubsub.subscribe(EVENTS_CHANNEL)
        waiter: asyncio.Task[str] | None = None
        try:
            while True:
                batch = await self.read(after)
                for event in batch:
                    after = event.id
                    yield event
                if batch:
                    continue
                if waiter is None:
                    waiter = asyncio.ensure_future(anext(announcements))
                done, _ = await asyncio.wait({waiter}, timeout=poll_seconds)
                if done:
                    waiter = None
        finally:
            if waiter is not None:
                waiter.cancel()
            await announcements.aclose()  # type: ignore[attr-defined]
