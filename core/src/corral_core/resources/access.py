"""Who may see and change which resource: owners, their org's admins, and groups granted access.

A resource the caller may not see does not exist for them (404), whatever its org.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, func, or_
from sqlmodel import col, select

from corral_core.db import Database
from corral_core.identity.models import Grant, Group
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.plugins import Kernel
from corral_core.resources.models import Resource
from corral_sdk.errors import Invalid, NotFound, PermissionDenied

__all__ = ["OWNER", "ResourceAccess"]

OWNER = "owner"


class ResourceAccess:
    def __init__(self, db: Database, kernel: Kernel) -> None:
        self._db = db
        self._kernel = kernel

    def _visible(self, principal: Principal) -> Any:
        if principal.platform_admin:
            return True
        granted = select(Grant.resource_id).where(
            col(Grant.group_id).in_(list(principal.group_ids) or [-1])
        )
        conditions = [col(Resource.owner) == principal.username, col(Resource.id).in_(granted)]
        if principal.has():  # org:admin sees the org's resources
            conditions.append(col(Resource.org) == principal.org)
        return or_(*conditions)

    async def list_visible(
        self,
        principal: Principal,
        *,
        kind: str | None = None,
        owner: str | None = None,
        states: Sequence[str] = (),
        where: Any = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Resource], int]:
        """Resources the caller may see, optionally of one kind, owner and observed states,
        and matching a further condition ``where`` (a SQL expression on ``Resource``)."""
        query = select(Resource).where(self._visible(principal))
        if where is not None:
            query = query.where(where)
        if kind:
            query = query.where(col(Resource.kind) == kind)
        if owner:
            query = query.where(col(Resource.owner) == owner)
        if states:
            query = query.where(col(Resource.observed_state).in_(list(states)))
        async with self._db.session() as session:
            total = (await session.exec(select(func.count()).select_from(query.subquery()))).one()
            rows = await session.exec(
                query.order_by(col(Resource.owner), col(Resource.name)).limit(limit).offset(offset)
            )
            return list(rows), total

    async def get(self, principal: Principal, ref: ResourceRef, kind: str = "") -> Resource:
        """The resource if the caller can see it (and it is of ``kind``, when given); 404 if not."""
        query = (
            select(Resource)
            .where(col(Resource.owner) == ref.owner)
            .where(col(Resource.name) == ref.name)
            .where(self._visible(principal))
        )
        row = await self._db.transaction(lambda session: session.exec(query).first())
        if row is None:
            raise NotFound(f"not found: {ref.uri}", reason="resource-not-found")
        if kind and row.kind != kind:
            article = "an" if kind[0] in "aeiou" else "a"
            raise NotFound(
                f"not found: {ref.uri} is not {article} {kind}", reason="resource-not-found"
            )
        return row

    async def level(self, principal: Principal, resource: Resource) -> str | None:
        """``owner`` for owners, org admins and platform admins; else the highest granted level."""
        if resource.owner == principal.username or principal.platform_admin:
            return OWNER
        if resource.org == principal.org and principal.has():
            return OWNER
        levels = self._kernel.resource_kind(resource.kind).share_levels
        query = (
            select(Grant.level)
            .where(col(Grant.resource_id) == resource.id)
            .where(col(Grant.group_id).in_(list(principal.group_ids) or [-1]))
        )
        granted = await self._db.transaction(lambda session: list(session.exec(query)))
        ranked = [level for level in levels if level in granted]
        return ranked[-1] if ranked else None

    async def require(
        self, principal: Principal, ref: ResourceRef, level: str = OWNER, kind: str = ""
    ) -> Resource:
        """The resource if the caller holds ``level`` (or more) on it; 404 if they cannot see it
        (or it is not of ``kind``, when given)."""
        return await self.require_level(principal, await self.get(principal, ref, kind), level)

    async def require_level(self, principal: Principal, resource: Resource, level: str) -> Resource:
        """``resource`` (which the caller can see) if they hold ``level`` or more on it."""
        ref = ResourceRef(resource.owner, resource.name)
        held = await self.level(principal, resource)
        if held == OWNER:
            return resource
        levels = self._kernel.resource_kind(resource.kind).share_levels
        # a level the kind does not share at (the generic routes' "edit") is the owner's alone
        owner_only = level == OWNER or level not in levels or held not in levels
        if owner_only or held is None or levels.index(held) < levels.index(level):
            raise PermissionDenied(
                f"{ref.uri} is shared with you at level {held!r}; this needs {level!r}",
                reason="share-level-too-low",
            )
        return resource

    async def grants(self, principal: Principal, ref: ResourceRef) -> list[tuple[Grant, str]]:
        resource = await self.get(principal, ref)
        async with self._db.session() as session:
            rows = await session.exec(
                select(Grant, Group.name)
                .join(Group, col(Group.id) == col(Grant.group_id))
                .where(col(Grant.resource_id) == resource.id)
                .order_by(col(Group.name))
            )
            return [(grant, name) for grant, name in rows]

    async def share(
        self, principal: Principal, ref: ResourceRef, group_name: str, level: str
    ) -> Grant:
        """Grant ``group_name`` (of the resource's org) access at ``level``; owners only."""
        resource = await self.require(principal, ref, OWNER)
        levels = self._kernel.resource_kind(resource.kind).share_levels
        if level not in levels:
            raise Invalid(
                f"level must be one of {', '.join(levels)} for a {resource.kind}", field="level"
            )
        async with self._db.session() as session:
            group = (
                await session.exec(
                    select(Group)
                    .where(col(Group.name) == group_name)
                    .where(col(Group.org_id) == principal.org_id)
                )
            ).first()
            if group is None:
                raise NotFound(f"no group named {group_name!r}")
            existing = (
                await session.exec(
                    select(Grant)
                    .where(col(Grant.resource_id) == resource.id)
                    .where(col(Grant.group_id) == group.id)
                )
            ).first()
            assert resource.id is not None and group.id is not None
            grant = existing or Grant(resource_id=resource.id, group_id=group.id, level=level)
            grant.level = level
            session.add(grant)
            await session.commit()
            await session.refresh(grant)
        return grant

    async def unshare(self, principal: Principal, ref: ResourceRef, group_name: str) -> None:
        resource = await self.require(principal, ref, OWNER)
        async with self._db.session() as session:
            group_ids = select(Group.id).where(col(Group.name) == group_name)
            result = await session.exec(
                delete(Grant)
                .where(col(Grant.resource_id) == resource.id)
                .where(col(Grant.group_id).in_(group_ids))
            )
            await session.commit()
        if not result.rowcount:
            raise NotFound(f"{ref.uri} is not shared with {group_name!r}")
