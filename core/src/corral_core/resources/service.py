"""Creating resources and changing what they should be; reconcilers make it so."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from corral_core.db import Database, utcnow
from corral_core.events.bus import EventLog
from corral_core.identity.names import RESOURCE_NAME, NameRule
from corral_core.plugins import Kernel
from corral_core.resources.models import Resource
from corral_sdk.config import describe_validation_error
from corral_sdk.errors import Conflict, Invalid, NotFound
from corral_sdk.reconcile import ResourceSnapshot
from corral_sdk.records import ResourceKindRecord

__all__ = ["ResourceService", "snapshot"]

Enqueue = Callable[[int], Awaitable[None]]


def snapshot(row: Resource) -> ResourceSnapshot:
    assert row.id is not None
    return ResourceSnapshot(
        id=row.id,
        kind=row.kind,
        org=row.org,
        owner=row.owner,
        name=row.name,
        spec=dict(row.spec),
        desired_state=row.desired_state,
        observed_state=row.observed_state,
        generation=row.generation,
        observed_generation=row.observed_generation,
        status=dict(row.status),
        updated_at=row.updated_at,
    )


class ResourceService:
    """Writes desired state and asks for a reconcile; never calls a provider itself."""

    def __init__(self, db: Database, kernel: Kernel, events: EventLog, enqueue: Enqueue) -> None:
        self._db = db
        self._kernel = kernel
        self._events = events
        self._enqueue = enqueue

    def _validate(self, kind: str, spec: dict[str, Any], desired_state: str | None) -> str:
        record = self._kernel.resource_kind(kind)
        if record.config is not None:
            try:
                msgspec.convert(spec, record.config)
            except msgspec.ValidationError as exc:
                field, message = describe_validation_error(exc, prefix="spec")
                raise Invalid(message, field=field) from None
        state = desired_state or record.initial_state
        if state not in record.states:
            raise Invalid(
                f"desired_state {state!r} is not a state of {kind} "
                f"(one of: {', '.join(record.states)})",
                field="desired_state",
            )
        return state

    async def create(
        self,
        kind: str,
        *,
        org: str,
        owner: str,
        name: str,
        spec: dict[str, Any] | None = None,
        desired_state: str | None = None,
        display_name: str = "",
        description: str = "",
        tags: Sequence[str] = (),
        actor: str | None = None,
        conflict_if_taken: str = "",
    ) -> ResourceSnapshot:
        """A new resource; a name its owner already has is a 422 naming ``name``, or a 409
        saying ``conflict_if_taken`` when that is given (both with reason ``name-taken``)."""
        spec = spec or {}
        state = self._validate(kind, spec, desired_state)
        record = self._kernel.resource_kind(kind)
        name_rule(record).check(name, "name")
        row = Resource(
            kind=kind,
            org=org,
            owner=owner,
            name=name,
            display_name=display_name,
            description=description,
            tags=list(tags),
            spec=spec,
            desired_state=state,
            observed_state=record.initial_state,
        )
        async with self._db.session() as session:
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                if conflict_if_taken:
                    raise Conflict(conflict_if_taken, reason="name-taken") from None
                raise Invalid(
                    f"name: {owner} already has a resource named {name!r}; names are unique "
                    "among all of an owner's resources, of every kind",
                    field="name",
                    reason="name-taken",
                    details={"rule": "unique among all your resources of every kind"},
                ) from None
            event = self._events.add(
                session,
                "resource.created",
                subject=f"resource:{row.id}",
                org=org,
                actor=actor,
                data={"kind": kind, "name": name, "owner": owner, "desired_state": state},
            )
            await session.commit()
            await session.refresh(row)
        assert row.id is not None and event.id is not None
        await self._events.announce(event.id)
        await self._enqueue(row.id)
        return snapshot(row)

    async def get(self, resource_id: int) -> ResourceSnapshot:
        async with self._db.session() as session:
            row = await session.get(Resource, resource_id)
        if row is None:
            raise NotFound(f"resource {resource_id} does not exist")
        return snapshot(row)

    async def describe(
        self,
        resource_id: int,
        *,
        display_name: str | None = None,
        description: str | None = None,
        tags: Sequence[str] | None = None,
    ) -> None:
        """Change how a resource is shown; nothing to reconcile."""
        async with self._db.session() as session:
            row = await session.get(Resource, resource_id)
            if row is None:
                raise NotFound(f"resource {resource_id} does not exist")
            if display_name is not None:
                row.display_name = display_name
            if description is not None:
                row.description = description
            if tags is not None:
                row.tags = list(tags)
            row.updated_at = utcnow()
            session.add(row)
            await session.commit()

    async def mark_observed(self, resource_id: int, state: str, *, unless: Sequence[str]) -> None:
        """Show a transitional state at once (``connecting`` when a start is accepted), unless
        the observed state is one of ``unless``; the reconcile that follows has the last word."""
        async with self._db.session() as session:
            await session.exec(
                update(Resource)
                .where(col(Resource.id) == resource_id)
                .where(col(Resource.observed_state).not_in(list(unless)))
                .values(observed_state=state, reason="", updated_at=utcnow())
            )
            await session.commit()

    async def delete(self, resource_id: int, *, actor: str | None = None) -> None:
        async with self._db.session() as session:
            row = await session.get(Resource, resource_id)
            if row is None:
                raise NotFound(f"resource {resource_id} does not exist")
            event = self._events.add(
                session,
                "resource.deleted",
                subject=f"resource:{row.id}",
                org=row.org,
                actor=actor,
                data={"kind": row.kind, "name": row.name, "owner": row.owner},
            )
            await session.delete(row)
            await session.commit()
        assert event.id is not None
        await self._events.announce(event.id)

    async def set_desired(
        self,
        resource_id: int,
        *,
        desired_state: str | None = None,
        spec: dict[str, Any] | None = None,
        actor: str | None = None,
    ) -> ResourceSnapshot:
        """Change what the resource should be; a new generation is reconciled."""
        async with self._db.session() as session:
            row = await session.get(Resource, resource_id, with_for_update=True)
            if row is None:
                raise NotFound(f"resource {resource_id} does not exist")
            new_spec = row.spec if spec is None else spec
            state = self._validate(row.kind, new_spec, desired_state or row.desired_state)
            if state == row.desired_state and new_spec == row.spec:
                return snapshot(row)
            previous = row.desired_state
            row.desired_state, row.spec = state, new_spec
            row.generation += 1
            row.attempts = 0
            row.next_reconcile_at = utcnow()
            row.updated_at = utcnow()
            session.add(row)
            event = self._events.add(
                session,
                "resource.desired_changed",
                subject=f"resource:{row.id}",
                org=row.org,
                actor=actor,
                data={"from": previous, "to": state, "generation": row.generation},
            )
            await session.commit()
            await session.refresh(row)
        assert event.id is not None
        await self._events.announce(event.id)
        await self._enqueue(resource_id)
        return snapshot(row)


def name_rule(record: ResourceKindRecord) -> NameRule:
    """How resources of ``record``'s kind are named."""
    if not record.name_pattern:
        return RESOURCE_NAME
    return NameRule(
        f"{record.name} name",
        re.compile(record.name_pattern),
        record.name_max_length,
        record.name_rule or f"matching {record.name_pattern}",
    )
