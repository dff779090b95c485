"""OS snapshots and static IPs: your own (and those shared with your groups at level ``use``),
made by your organization's cloud accounts. Share them through ``/api/resources/.../grants``."""

from __future__ import annotations

from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED

from corral_api.params import Limit, Offset
from corral_api.security import Caller, RuntimeDep
from corral_core.identity.names import ResourceRef
from corral_sdk.wire import (
    OsSnapshotCreate,
    OsSnapshotInfo,
    OsSnapshotList,
    StaticIpCreate,
    StaticIpInfo,
    StaticIpList,
)

__all__ = ["OsSnapshotController", "StaticIpController"]


class OsSnapshotController(Controller):
    path = "/api/os-snapshots"
    tags = ["os-snapshots"]

    @get("/", summary="OS snapshots you own or that are shared with you (deleted: for an hour)")
    async def list_snapshots(
        self, principal: Caller, runtime: RuntimeDep, limit: Limit = 50, offset: Offset = 0
    ) -> OsSnapshotList:
        rows, total = await runtime.os_snapshots.list_snapshots(
            principal, limit=limit, offset=offset
        )
        return OsSnapshotList(
            items=[await runtime.os_snapshots.info(r) for r in rows],
            total=total,
            limit=limit,
            offset=offset,
        )

    @post(
        "/",
        summary="Take an OS snapshot of a running cloud cluster's controller root disk "
        "(provisioning, then provisioned)",
    )
    async def create_snapshot(
        self, data: JSONBody[OsSnapshotCreate], principal: Caller, runtime: RuntimeDep
    ) -> OsSnapshotInfo:
        row = await runtime.os_snapshots.create(principal, data)
        return await runtime.os_snapshots.info(row)

    @get("/{owner:str}/{name:str}", summary="One OS snapshot, with its provisioning steps")
    async def get_snapshot(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> OsSnapshotInfo:
        row = await runtime.os_snapshots.get(principal, ResourceRef(owner, name))
        return await runtime.os_snapshots.info(row)

    @delete(
        "/{owner:str}/{name:str}",
        status_code=HTTP_202_ACCEPTED,
        summary="Delete an OS snapshot's image: deleting, then deleted for an hour (409 while "
        "clusters that are not off boot from it)",
    )
    async def delete_snapshot(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> OsSnapshotInfo:
        row = await runtime.os_snapshots.delete(principal, ResourceRef(owner, name))
        return await runtime.os_snapshots.info(row)


class StaticIpController(Controller):
    path = "/api/static-ips"
    tags = ["static-ips"]

    @get("/", summary="Static IPs you own or that are shared with you")
    async def list_static_ips(
        self, principal: Caller, runtime: RuntimeDep, limit: Limit = 50, offset: Offset = 0
    ) -> StaticIpList:
        rows, total = await runtime.static_ips.list_static_ips(
            principal, limit=limit, offset=offset
        )
        return StaticIpList(
            items=[await runtime.static_ips.info(r) for r in rows],
            total=total,
            limit=limit,
            offset=offset,
        )

    @post("/", summary="Allocate a static IP in a region of a cloud account")
    async def create_static_ip(
        self, data: JSONBody[StaticIpCreate], principal: Caller, runtime: RuntimeDep
    ) -> StaticIpInfo:
        return await runtime.static_ips.info(await runtime.static_ips.create(principal, data))

    @get("/{owner:str}/{name:str}", summary="One static IP, with its address")
    async def get_static_ip(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> StaticIpInfo:
        row = await runtime.static_ips.get(principal, ResourceRef(owner, name))
        return await runtime.static_ips.info(row)

    @delete(
        "/{owner:str}/{name:str}",
        status_code=HTTP_202_ACCEPTED,
        summary="Release a static IP: deleting, then gone (409 while a cluster that is not off "
        "uses it)",
    )
    async def delete_static_ip(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> StaticIpInfo:
        row = await runtime.static_ips.delete(principal, ResourceRef(owner, name))
        return await runtime.static_ips.info(row)
