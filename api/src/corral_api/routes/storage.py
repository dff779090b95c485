"""Storage: buckets, disks, NFS and Lustre file systems of the installed storage types. Yours,
and those shared with your groups (``view_edit``: see, change, start and stop it; ``mount``:
see that it exists and runs, mount it, get its credentials). Starting one provisions it (a new
session with its provision log); stopping it deletes it at the cloud, data included."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, delete, get, patch, post, put
from litestar.enums import MediaType
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter
from litestar.status_codes import HTTP_202_ACCEPTED

from corral_api.params import MAX_OFFSET, Limit, Offset
from corral_api.security import Caller, RuntimeDep
from corral_core.identity.names import ResourceRef
from corral_core.storage.logs import format_line
from corral_core.storage.service import session_info
from corral_core.storage.sessions import session_label
from corral_core.storage.types import type_label
from corral_sdk.wire import (
    StorageCategoryName,
    StorageCreate,
    StorageCredentials,
    StorageDetails,
    StorageList,
    StorageLogLine,
    StorageLogs,
    StorageSessionList,
    StorageShare,
    StorageShareInfo,
    StorageStatus,
    StorageSummary,
    StorageTypeInfo,
    StorageUpdate,
)

__all__ = ["StorageController"]

Category = Annotated[
    StorageCategoryName | None, QueryParameter(required=False, description="only this category")
]
SessionNumber = Annotated[
    int, PathParameter(ge=1, le=99999, description="the session, 1 for 00001")
]
LogTab = Annotated[str, PathParameter(pattern="^(provision|deletion)$")]
NO_STORE = {"Cache-Control": "no-store"}


class StorageController(Controller):
    path = "/api/storage"
    tags = ["storage"]

    @get("/types", summary="The storage types the installed plugins offer")
    async def list_types(self, principal: Caller, runtime: RuntimeDep) -> list[StorageTypeInfo]:
        return [
            StorageTypeInfo(
                name=record.name,
                label=type_label(record),
                category=record.category.value,
                csp=record.cloud,
                features=sorted(f.value for f in record.features),
                docs=record.docs,
            )
            for record in sorted(runtime.kernel.storage_types().values(), key=lambda r: r.name)
        ]

    @get("/", summary="Storage you own or that is shared with you")
    async def list_storage(
        self,
        principal: Caller,
        runtime: RuntimeDep,
        category: Category = None,
        csp: Annotated[str, QueryParameter(required=False, max_length=63)] = "",
        owner: Annotated[
            str, QueryParameter(required=False, max_length=255, description="a namespace")
        ] = "",
        status: Annotated[StorageStatus | None, QueryParameter(required=False)] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> StorageList:
        rows, total = await runtime.storage.list_storage(
            principal,
            category=category or "",
            csp=csp,
            owner=owner,
            status=status or "",
            limit=limit,
            offset=offset,
        )
        return StorageList(
            items=await runtime.storage.summaries(principal, rows),
            total=total,
            limit=limit,
            offset=offset,
        )

    @post("/", summary="Create a storage (stopped: start it to provision it)")
    async def create_storage(
        self, data: JSONBody[StorageCreate], principal: Caller, runtime: RuntimeDep
    ) -> StorageDetails:
        row = await runtime.storage.create(principal, data)
        return await runtime.storage.details(principal, row)

    @get(
        "/resolve",
        summary="The storage a URI names (ref): pw://namespace/name[/path], or a provisioned "
        "storage's CSP URI (s3://bucket[/path])",
    )
    async def resolve(
        self,
        ref: Annotated[str, QueryParameter(name="ref", min_length=1, max_length=2048)],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> StorageSummary:
        row = await runtime.storage.resolve(principal, ref)
        return (await runtime.storage.summaries(principal, [row]))[0]

    @get("/{owner:str}/{name:str}", summary="One storage with its definition (view_edit)")
    async def get_storage(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> StorageDetails:
        row = await runtime.storage.get(principal, ResourceRef(owner, name))
        return await runtime.storage.details(principal, row)

    @patch(
        "/{owner:str}/{name:str}",
        summary="Change a storage (view_edit); its definition only while it is stopped, its "
        "cloud account and group only as its owner",
    )
    async def update_storage(
        self,
        owner: FromPath[str],
        name: FromPath[str],
        data: JSONBody[StorageUpdate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> StorageDetails:
        row = await runtime.storage.update(principal, ResourceRef(owner, name), data)
        return await runtime.storage.details(principal, row)

    @delete(
        "/{owner:str}/{name:str}",
        summary="Delete a stopped storage (its owner; 409 until it is stopped)",
        status_code=204,
    )
    async def delete_storage(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> None:
        await runtime.storage.delete(principal, ResourceRef(owner, name))

    @post(
        "/{owner:str}/{name:str}/start",
        status_code=HTTP_202_ACCEPTED,
        summary="Provision a storage: a new session, starting, then active (view_edit)",
    )
    async def start_storage(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> StorageDetails:
        row = await runtime.storage.start(principal, ResourceRef(owner, name))
        return await runtime.storage.details(principal, row)

    @post(
        "/{owner:str}/{name:str}/stop",
        status_code=HTTP_202_ACCEPTED,
        summary="Delete a storage at the cloud, data included: stopping, then stopped (view_edit)",
    )
    async def stop_storage(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> StorageDetails:
        row = await runtime.storage.stop(principal, ResourceRef(owner, name))
        return await runtime.storage.details(principal, row)

    @get("/{owner:str}/{name:str}/sessions", summary="A storage's sessions, newest first")
    async def list_sessions(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> StorageSessionList:
        rows = await runtime.storage.list_sessions(principal, ResourceRef(owner, name))
        return StorageSessionList(items=[session_info(r) for r in rows])

    @get(
        "/{owner:str}/{name:str}/sessions/{session:int}/logs/{log:str}",
        summary="A session's provision or deletion log from an offset",
    )
    async def read_log(
        self,
        owner: FromPath[str],
        name: FromPath[str],
        session: SessionNumber,
        log: LogTab,
        principal: Caller,
        runtime: RuntimeDep,
        offset: Annotated[int, QueryParameter(ge=0, le=MAX_OFFSET)] = 0,
    ) -> StorageLogs:
        found, lines, finished = await runtime.storage.read_log(
            principal, ResourceRef(owner, name), session, log, offset
        )
        return StorageLogs(
            session=session_label(found.number),
            log=log,  # type: ignore[arg-type]
            lines=[StorageLogLine(offset=x.offset, at=x.at, message=x.message) for x in lines],
            next_offset=lines[-1].offset + 1 if lines else offset,
            finished=finished,
        )

    @get(
        "/{owner:str}/{name:str}/sessions/{session:int}/logs/{log:str}/download",
        summary="A session's provision or deletion log as text: one line per entry, its ISO "
        "time and message",
        media_type=MediaType.TEXT,
    )
    async def download_log(
        self,
        owner: FromPath[str],
        name: FromPath[str],
        session: SessionNumber,
        log: LogTab,
        principal: Caller,
        runtime: RuntimeDep,
    ) -> Response[bytes]:
        ref = ResourceRef(owner, name)
        text: list[str] = []
        offset = 0
        while True:
            found, lines, _ = await runtime.storage.read_log(principal, ref, session, log, offset)
            if not lines:
                break
            text.extend(format_line(x.at, x.message) for x in lines)
            offset = lines[-1].offset + 1
        filename = f"{name}-{session_label(found.number)}-{log}.log"
        return Response(
            ("".join(f"{line}\n" for line in text)).encode(),
            media_type="text/plain; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @get("/{owner:str}/{name:str}/sharing", summary="The groups a storage is shared with")
    async def list_sharing(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> list[StorageShareInfo]:
        return await runtime.storage.sharing(principal, ResourceRef(owner, name))

    @put(
        "/{owner:str}/{name:str}/sharing/{group:str}",
        summary="Set a group's access (the owner): view_edit (includes mount), mount, or "
        "neither (no longer shared)",
    )
    async def share(
        self,
        owner: FromPath[str],
        name: FromPath[str],
        group: FromPath[str],
        data: JSONBody[StorageShare],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> list[StorageShareInfo]:
        return await runtime.storage.share(principal, ResourceRef(owner, name), group, data)

    @post(
        "/{owner:str}/{name:str}/credentials",
        summary="Short-lived credentials scoped to an active bucket (mount or more; 409 when "
        "it is not active)",
    )
    async def credentials(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> Response[StorageCredentials]:
        issued = await runtime.storage.credentials(principal, ResourceRef(owner, name))
        return Response(issued, headers=NO_STORE)

    @put(
        "/{owner:str}/{name:str}/favorite",
        summary="Make a persistent storage one of your favourites",
        status_code=204,
    )
    async def favorite(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> None:
        await runtime.storage.set_favorite(principal, ResourceRef(owner, name), True)

    @delete("/{owner:str}/{name:str}/favorite", summary="No longer a favourite", status_code=204)
    async def unfavorite(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> None:
        await runtime.storage.set_favorite(principal, ResourceRef(owner, name), False)
