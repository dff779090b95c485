"""Delivering stored events to plugins' ``corral_on_event``, in order, from a durable cursor."""

from __future__ import annotations

import logging

from corral_core.db import Database, utcnow
from corral_core.events.bus import EventLog
from corral_core.events.models import EventCursor
from corral_core.leases import release_lease, try_acquire_lease
from corral_core.plugins import Kernel

__all__ = ["PLUGINS_CONSUMER", "deliver_events_to_plugins"]

log = logging.getLogger("corral.events")

PLUGINS_CONSUMER = "plugins"
BATCH = 200


async def deliver_events_to_plugins(
    db: Database, events: EventLog, kernel: Kernel, owner: str, lease_seconds: float
) -> int:
    """Deliver every event past the cursor; one process at a time. Returns how many."""
    lease = f"event-consumer:{PLUGINS_CONSUMER}"
    if not await try_acquire_lease(db, lease, owner, lease_seconds):
        return 0
    delivered = 0
    try:
        async with db.session() as session:
            cursor = await session.get(EventCursor, PLUGINS_CONSUMER)
            if cursor is None:
                cursor = EventCursor(consumer=PLUGINS_CONSUMER, last_id=0)
                session.add(cursor)
                await session.commit()
        last_id = cursor.last_id
        while batch := await events.read(after=last_id, limit=BATCH):
            for event in batch:
                kernel.on_event(event)
                last_id = event.id
                delivered += 1
                # The cursor moves per event: after a crash, at most one event is delivered twice.
                async with db.session() as session:
                    row = await session.get(EventCursor, PLUGINS_CONSUMER)
                    assert row is not None
                    row.last_id, row.updated_at = last_id, utcnow()
                    session.add(row)
                    await session.commit()
            await try_acquire_lease(db, lease, owner, lease_seconds)
    finally:
        await release_lease(db, lease, owner)
    return delivered
