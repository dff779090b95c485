"""Resources of every kind: create, read, change desired state, share with groups."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from corral_api.params import Limit, Offset
from corral_api.security import Caller, RuntimeDep
from corral_core.identity.names import ResourceRef
from corral_core.resources.models import Resource
from corral_sdk.wire import (
    GrantCreate,
    GrantInfo,
    ResourceCreate,
    ResourceInfo,
    ResourceList,
    ResourceUpdate,
)

__all__ = ["ResourceController", "resource_info"]


def resource_info(row: Resource) -> ResourceInfo:
    return ResourceInfo(
        uri=ResourceRef(row.owner, row.name).uri,
        kind=row.kind,
        owner=row.owner,
        name=row.name,
        display_name=row.display_name or row.name,
        description=row.description,
        tags=list(row.tags),
        spec=dict(row.spec),
        desired_state=row.desired_state,
        observed_state=row.observed_state,
        reason=row.reason,
        generation=row.generation,
        observed_generation=row.observed_generation,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class ResourceController(Controller):
    path = "/api/resources"
    tags = ["resources"]

    @get("/", summary="Resources you own or that are shared with you")
    async def list_resources(
        self,
        principal: Caller,
        runtime: RuntimeDep,
        kind: Annotated[str | None, QueryParameter(name="kind")] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> ResourceList:
        rows, total = await runtime.access.list_visible(
            principal, kind=kind, limit=limit, offset=offset
        )
        return ResourceList(
            items=[resource_info(r) for r in rows], total=total, limit=limit, offset=offset
        )

    @post("/", summary="Create a resource in your namespace")
    async def create_resource(
        self,
        data: JSONBody[ResourceCreate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> ResourceInfo:
        created = await runtime.resources.create(
            data.kind,
            org=principal.org,
            owner=principal.username,
            name=data.name,
            spec=data.spec,
            desired_state=data.desired_state,
            display_name=data.display_name,
            description=data.description,
            tags=data.tags,
            actor=principal.username,
        )
        return resource_info(
            await runtime.access.get(principal, ResourceRef(created.owner, created.name))
        )

    @get("/lookup", summary="Find a resource by reference: pw://owner/name, owner/name or name")
    async def lookup(
        self,
        ref: Annotated[str, QueryParameter(name="ref", max_length=600)],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> ResourceInfo:
        """A bare ``name`` is the caller's own resource."""
        return resource_info(
            await runtime.access.get(principal, ResourceRef.parse(ref, principal.username, "ref"))
        )

    @get("/{owner:str}/{name:str}", summary="One resource (pw://owner/name)")
    async def get_resource(
        self,
        owner: FromPath[str],
        name: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> ResourceInfo:
        return resource_info(await runtime.access.get(principal, ResourceRef(owner, name)))

    @patch(
        "/{owner:str}/{name:str}",
        summary="Change what a resource should be; reconciled in the background",
    )
    async def update_resource(
        self,
        owner: FromPath[str],
        name: FromPath[str],
        data: JSONBody[ResourceUpdate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> ResourceInfo:
        ref = ResourceRef(owner, name)
        row = await runtime.access.require(principal, ref, "edit")
        assert row.id is not None
        await runtime.resources.set_desired(
            row.id, desired_state=data.desired_state, spec=data.spec, actor=principal.username
        )
        return resource_info(await runtime.access.get(principal, ref))

    @get("/{owner:str}/{name:str}/grants", summary="Who a resource is shared with")
    async def list_grants(
        self,
        owner: FromPath[str],
        name: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> list[GrantInfo]:
        grants = await runtime.access.grants(principal, ResourceRef(owner, name))
        return [
            GrantInfo(group=group, level=g.level, created_at=g.created_at) for g, group in grants
        ]

    @put("/{owner:str}/{name:str}/grants/{group:str}", summary="Share with a group at a level")
    async def share(
        self,
        owner: FromPath[str],
        name: FromPath[str],
        group: FromPath[str],
        data: JSONBody[GrantCreate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> GrantInfo:
        grant = await runtime.access.share(principal, ResourceRef(owner, name), group, data.level)
        return GrantInfo(group=group, level=grant.level, created_at=grant.created_at)

    @delete(
        "/{owner:str}/{name:str}/grants/{group:str}",
        summary="Stop sharing with a group",
        status_code=204,
    )
    async def unshare(
        self,
        owner: FromPath[str],
        name: FromPath[str],
        group: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> None:
        await runtime.access.unshare(principal, ResourceRef(owner, name), group)
