"""The reconcile loop every kind of resource goes through.

A reconcile takes a lease on the resource row (so at most one runs per resource across every
worker), calls the kind's reconciler with no transaction open, and writes the result only while
it still holds the lease (a fencing token). Resources that did not settle are due again after a
back-off; the periodic sweep re-enqueues whatever is due, so a killed process loses nothing:
its lease expires and another worker picks the resource up.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, update
from sqlmodel import col, select

from corral_core.db import Database, utcnow
from corral_core.events.bus import EventLog
from corral_core.plugins import Kernel
from corral_core.resources.models import Resource
from corral_core.resources.service import snapshot
from corral_core.settings import ReconcileSettings
from corral_sdk.errors import CorralError, NotFound
from corral_sdk.reconcile import Reconciler, ReconcileResult, ResourceSnapshot

__all__ = ["ResourceReconciler"]

log = logging.getLogger("corral.reconcile")

EnqueueAfter = Callable[[int, float], Awaitable[None]]


class _Context:
    def __init__(self, driver: ResourceReconciler, resource: ResourceSnapshot, token: str) -> None:
        self._driver, self._resource, self._token = driver, resource, token

    @property
    def settings(self) -> Any:
        return None

    async def heartbeat(self) -> None:
        await self._driver._extend_lease(self._resource.id, self._token)

    async def emit(self, type: str, data: dict[str, Any] | None = None) -> None:
        await self._driver.events.emit(
            type, subject=f"resource:{self._resource.id}", org=self._resource.org, data=data
        )


class ResourceReconciler:
    """Drives resources of every registered kind towards their desired state."""

    def __init__(
        self,
        db: Database,
        kernel: Kernel,
        events: EventLog,
        settings: ReconcileSettings,
        enqueue_after: EnqueueAfter,
    ) -> None:
        self.db = db
        self.kernel = kernel
        self.events = events
        self.settings = settings
        self._enqueue_after = enqueue_after
        self._reconcilers: dict[str, Reconciler] = {}

    def bind(self, kind: str, reconciler: Reconciler) -> None:
        """Use ``reconciler`` for ``kind`` instead of building one from its record: the
        kernel's own kinds need the runtime's services, which a plugin's factory cannot take."""
        self._reconcilers[kind] = reconciler

    def _reconciler(self, kind: str) -> Reconciler:
        if kind not in self._reconcilers:
            self._reconcilers[kind] = self.kernel.resource_kind(kind).create()
        return self._reconcilers[kind]

    # --- leases ---------------------------------------------------------------------------------

    async def _acquire(self, resource_id: int, token: str) -> Resource | None:
        now = utcnow()
        until = now + timedelta(seconds=self.settings.lease_seconds)
        async with self.db.session() as session:
            result = await session.exec(
                update(Resource)
                .where(col(Resource.id) == resource_id)
                .where(
                    or_(col(Resource.lease_owner).is_(None), col(Resource.lease_expires_at) < now)
                )
                # If this worker dies, the sweep finds the resource due once the lease expires.
                .values(lease_owner=token, lease_expires_at=until, next_reconcile_at=until)
            )
            await session.commit()
            if not result.rowcount:
                return None
            return await session.get(Resource, resource_id, populate_existing=True)

    async def _extend_lease(self, resource_id: int, token: str) -> None:
        until = utcnow() + timedelta(seconds=self.settings.lease_seconds)
        async with self.db.session() as session:
            await session.exec(
                update(Resource)
                .where(col(Resource.id) == resource_id)
                .where(col(Resource.lease_owner) == token)
                .values(lease_expires_at=until, next_reconcile_at=until)
            )
            await session.commit()

    async def _release(
        self, resource_id: int, token: str, *, event: dict[str, Any] | None = None, **values: Any
    ) -> bool:
        """Write the outcome and drop the lease; the state-change event, if any, commits with it."""
        async with self.db.session() as session:
            result = await session.exec(
                update(Resource)
                .where(col(Resource.id) == resource_id)
                .where(col(Resource.lease_owner) == token)
                .values(lease_owner=None, lease_expires_at=None, **values)
            )
            released = bool(result.rowcount)
            row = self.events.add(session, **event) if released and event is not None else None
            await session.commit()
            if row is not None:
                await session.refresh(row)
        if row is not None and row.id is not None:
            await self.events.announce(row.id)
        return released

    # --- reconcile ------------------------------------------------------------------------------

    def _backoff(self, attempts: int) -> float:
        return float(
            min(self.settings.retry_backoff * 2 ** max(attempts - 1, 0), self.settings.max_backoff)
        )

    async def reconcile(self, resource_id: int) -> None:
        """Reconcile one resource until it is settled for its current generation.

        Safe to call any number of times, concurrently, from any process.
        """
        token = uuid.uuid4().hex
        while True:
            row = await self._acquire(resource_id, token)
            if row is None:
                return  # gone, or another worker holds it and will see any newer generation
            again = await self._reconcile_leased(row, token)
            if not again:
                return

    async def _reconcile_leased(self, row: Resource, token: str) -> bool:
        """One pass under the lease; ``True`` when the generation moved on meanwhile."""
        assert row.id is not None
        resource = snapshot(row)
        try:
            record = self.kernel.resource_kind(resource.kind)
        except NotFound as exc:
            await self._release(
                resource.id,
                token,
                reason=exc.message,
                next_reconcile_at=utcnow() + timedelta(seconds=self.settings.max_backoff),
            )
            log.warning("resource %s: %s", resource.id, exc.message)
            return False
        settled = (
            resource.observed_generation == resource.generation
            and resource.observed_state in record.terminal_states
        )
        if settled:
            await self._release(resource.id, token, next_reconcile_at=None)
            return False

        result: ReconcileResult | None = None
        reason = ""
        try:
            reconciler = self._reconciler(resource.kind)
            result = await reconciler.reconcile(resource, _Context(self, resource, token))
        except CorralError as exc:
            reason = exc.message
            log.warning("reconcile of resource %s failed: %s", resource.id, exc.log_message)
        except Exception as exc:
            reason = f"internal error while reconciling: {type(exc).__name__}"
            log.exception("reconcile of resource %s crashed", resource.id)

        now = utcnow()
        values: dict[str, Any] = {"updated_at": now}
        delay: float | None
        if result is None:
            attempts = row.attempts + 1
            delay = self._backoff(attempts)
            values.update(attempts=attempts, reason=reason)
        else:
            if result.observed_state not in record.states:
                log.error(
                    "resource %s: reconciler returned unknown state %r",
                    resource.id,
                    result.observed_state,
                )
            values.update(
                observed_state=result.observed_state,
                observed_generation=resource.generation,
                reason=result.reason,
            )
            if result.status is not None:
                values["status"] = result.status
            if result.requeue_after is not None:
                delay = result.requeue_after
                values["attempts"] = 0
            elif result.observed_state in record.terminal_states:
                delay = None
                values["attempts"] = 0
            else:
                attempts = row.attempts + 1
                delay = self._backoff(attempts)
                values["attempts"] = attempts
        values["next_reconcile_at"] = None if delay is None else now + timedelta(seconds=delay)

        event = None
        if result is not None and result.observed_state != resource.observed_state:
            event = {
                "type": "resource.state_changed",
                "subject": f"resource:{resource.id}",
                "org": resource.org,
                "data": {
                    "kind": resource.kind,
                    "from": resource.observed_state,
                    "to": result.observed_state,
                    "reason": result.reason,
                    "generation": resource.generation,
                },
            }
        if not await self._release(resource.id, token, event=event, **values):
            async with self.db.session() as session:
                gone = await session.get(Resource, resource.id) is None
            if not gone:  # a reconciler may delete its resource (a deprovisioned network)
                log.warning("resource %s: lease lost during reconcile; result dropped", resource.id)
            return False
        async with self.db.session() as session:
            current = await session.get(Resource, resource.id)
        if current is not None and current.generation != resource.generation:
            return True
        if delay is not None:
            await self._enqueue_after(resource.id, delay)
        return False

    async def due(self, limit: int = 1000) -> list[int]:
        """Resources whose next reconcile time has come (the sweep enqueues them)."""
        now = utcnow()
        async with self.db.session() as session:
            rows = await session.exec(
                select(Resource.id)
                .where(col(Resource.next_reconcile_at) <= now)
                .order_by(col(Resource.next_reconcile_at))
                .limit(limit)
            )
            return [rid for rid in rows if rid is not None]
