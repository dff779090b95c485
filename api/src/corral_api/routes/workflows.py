"""Workflows: add, list, read, change (versions), favourite, delete, check a YAML; and the
published JSON Schema of the format."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from corral_api.params import Limit, Offset
from corral_api.security import PUBLIC, Caller, RuntimeDep
from corral_core.identity.names import ResourceRef
from corral_core.resources.models import Resource
from corral_core.workflows.loader import WorkflowInvalid
from corral_core.workflows.models import WorkflowVersion
from corral_core.workflows.schema import workflow_schema
from corral_core.workflows.service import WorkflowService
from corral_sdk.wire import (
    WorkflowCheck,
    WorkflowCreate,
    WorkflowInfo,
    WorkflowList,
    WorkflowMarketplace,
    WorkflowProblemInfo,
    WorkflowUpdate,
    WorkflowVersionInfo,
)

__all__ = ["WorkflowController", "WorkflowSchemaController"]

Owner = FromPath[str]
Name = FromPath[str]
Version = Annotated[int, PathParameter(ge=1, le=2**31 - 1)]


class WorkflowLint(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    yaml: str
    name: str = ""
    """The workflow's name, to find a step that uses the workflow itself."""


def workflow_info(
    row: Resource,
    *,
    favorite: bool = False,
    yaml: str = "",
    marketplace: WorkflowMarketplace | None = None,
) -> WorkflowInfo:
    spec = WorkflowService.spec_of(row)
    return WorkflowInfo(
        uri=ResourceRef(row.owner, row.name).uri,
        owner=row.owner,
        name=row.name,
        display_name=row.display_name,
        marketplace=marketplace,
        description=row.description,
        tags=list(row.tags),
        app=spec.app,
        source=spec.source,
        url=spec.url,
        ref=spec.ref,
        path=spec.path if spec.source == "remote" else "",
        version=spec.version,
        favorite=favorite,
        yaml=yaml,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _version_info(row: WorkflowVersion, *, yaml: bool) -> WorkflowVersionInfo:
    return WorkflowVersionInfo(
        version=row.version,
        created_by=row.created_by,
        created_at=row.created_at,
        yaml=row.yaml if yaml else "",
    )


class WorkflowController(Controller):
    path = "/api/workflows"
    tags = ["workflows"]

    async def _full(self, runtime: Any, principal: Any, row: Resource) -> WorkflowInfo:
        favorite = row.id in await runtime.workflows.favorites(principal)
        yaml = ""
        if WorkflowService.spec_of(row).source == "local":
            yaml = (await runtime.workflows.yaml_of(row)).yaml
        used = await runtime.marketplace_copies.subscriptions([row.id])
        return workflow_info(row, favorite=favorite, yaml=yaml, marketplace=used.get(row.id or 0))

    @get(
        "/",
        summary="Workflows you can see (yours, your organization's, shared with you); "
        "marketplace=true: the marketplace workflows you use, false: the others",
    )
    async def list_workflows(
        self,
        principal: Caller,
        runtime: RuntimeDep,
        favorite: Annotated[bool, QueryParameter(name="favorite")] = False,
        owner: Annotated[str | None, QueryParameter(name="owner", max_length=255)] = None,
        marketplace: Annotated[bool | None, QueryParameter(name="marketplace")] = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> WorkflowList:
        rows, total = await runtime.workflows.list_workflows(
            principal,
            owner=owner,
            favorite=favorite,
            marketplace=marketplace,
            limit=limit,
            offset=offset,
        )
        favorites = await runtime.workflows.favorites(principal)
        used = await runtime.marketplace_copies.subscriptions([r.id for r in rows])
        return WorkflowList(
            items=[
                workflow_info(r, favorite=r.id in favorites, marketplace=used.get(r.id or 0))
                for r in rows
            ],
            total=total,
            limit=limit,
            offset=offset,
        )

    @post("/", summary="Add a workflow; a YAML with problems is refused (422) with each problem's "
          "line and column")  # fmt: skip
    async def create_workflow(
        self, data: JSONBody[WorkflowCreate], principal: Caller, runtime: RuntimeDep
    ) -> WorkflowInfo:
        row = await runtime.workflows.create(principal, data)
        return await self._full(runtime, principal, row)

    @post("/lint", summary="Check a YAML without saving it: every problem with line and column",
          status_code=200)  # fmt: skip
    async def lint_workflow(self, data: JSONBody[WorkflowLint], principal: Caller) -> WorkflowCheck:
        try:
            WorkflowService.check(data.yaml, data.name)
        except WorkflowInvalid as exc:
            return WorkflowCheck(
                valid=False,
                problems=[
                    WorkflowProblemInfo(
                        line=p.line, column=p.column, message=p.message, path=p.path
                    )
                    for p in exc.problems
                ],
            )
        return WorkflowCheck(valid=True)

    @get("/{owner:str}/{name:str}", summary="One workflow, with its current YAML")
    async def get_workflow(
        self, owner: Owner, name: Name, principal: Caller, runtime: RuntimeDep
    ) -> WorkflowInfo:
        row = await runtime.workflows.get(principal, ResourceRef(owner, name))
        return await self._full(runtime, principal, row)

    @patch("/{owner:str}/{name:str}", summary="Change a workflow; a new YAML is a new version")
    async def update_workflow(
        self,
        owner: Owner,
        name: Name,
        data: JSONBody[WorkflowUpdate],
        principal: Caller,
        runtime: RuntimeDep,
    ) -> WorkflowInfo:
        row = await runtime.workflows.update(principal, ResourceRef(owner, name), data)
        return await self._full(runtime, principal, row)

    @delete("/{owner:str}/{name:str}", summary="Delete a workflow (its owner)")
    async def delete_workflow(
        self, owner: Owner, name: Name, principal: Caller, runtime: RuntimeDep
    ) -> None:
        await runtime.workflows.delete(principal, ResourceRef(owner, name))

    @get("/{owner:str}/{name:str}/versions", summary="The versions of a workflow's YAML, newest "
         "first")  # fmt: skip
    async def list_versions(
        self, owner: Owner, name: Name, principal: Caller, runtime: RuntimeDep
    ) -> list[WorkflowVersionInfo]:
        rows = await runtime.workflows.versions(principal, ResourceRef(owner, name))
        return [_version_info(r, yaml=False) for r in rows]

    @get("/{owner:str}/{name:str}/versions/{version:int}", summary="One version's YAML")
    async def get_version(
        self, owner: Owner, name: Name, version: Version, principal: Caller, runtime: RuntimeDep
    ) -> WorkflowVersionInfo:
        row = await runtime.workflows.get(principal, ResourceRef(owner, name))
        return _version_info(await runtime.workflows.yaml_of(row, version), yaml=True)

    @put("/{owner:str}/{name:str}/favorite", summary="Make a workflow one of your favourites",
         status_code=204)  # fmt: skip
    async def favorite(
        self, owner: Owner, name: Name, principal: Caller, runtime: RuntimeDep
    ) -> None:
        await runtime.workflows.set_favorite(principal, ResourceRef(owner, name), True)

    @delete("/{owner:str}/{name:str}/favorite", summary="No longer a favourite")
    async def unfavorite(
        self, owner: Owner, name: Name, principal: Caller, runtime: RuntimeDep
    ) -> None:
        await runtime.workflows.set_favorite(principal, ResourceRef(owner, name), False)


class WorkflowSchemaController(Controller):
    path = "/api/schema"
    tags = ["workflows"]

    @get(
        "/workflow.json",
        summary="The JSON Schema of the workflow YAML (for editors)",
        opt=PUBLIC,
    )
    async def workflow_json_schema(self) -> Response[dict[str, Any]]:
        return Response(workflow_schema(), media_type="application/schema+json")
