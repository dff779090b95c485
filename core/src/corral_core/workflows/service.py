"""Workflows as users manage them: add (local YAML or a remote repository), list, read, change
(each new YAML a version), favourite, delete; every YAML checked with its line and column."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from sqlalchemy import delete as sql_delete
from sqlmodel import col, select

from corral_core.db import Database
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.marketplace.models import MarketplaceSubscription
from corral_core.resources.access import ResourceAccess
from corral_core.resources.models import Resource
from corral_core.resources.service import ResourceService
from corral_core.workflows.loader import LoadedWorkflow, load
from corral_core.workflows.models import WorkflowFavorite, WorkflowVersion
from corral_core.workflows.remote import fetch_workflow
from corral_core.workflows.spec import WORKFLOW_KIND, WORKFLOW_USER_NAME, WorkflowSpec
from corral_sdk.errors import Invalid, NotFound
from corral_sdk.wire import WorkflowCreate, WorkflowUpdate

__all__ = ["MAX_DESCRIPTION", "STARTER_YAML", "WorkflowService", "YamlToRun"]

MAX_DESCRIPTION = 100

STARTER_YAML = """\
# A starter workflow: change it, then run it with `corral workflows run <name>`.
jobs:
  main:
    steps:
      - name: Say hello
        run: echo "Hello from ${{ inputs.greeting }} on $(hostname)"
'on':
  execute:
    inputs:
      intro:
        type: header
        text: Starter Local Workflow
      greeting:
        type: string
        label: Who says hello
        default: Corral
"""
"""The YAML of a local workflow added without one."""


@dataclass(frozen=True)
class YamlToRun:
    version: int
    """The local workflow's version; 0 for a remote workflow."""
    yaml: str
    commit: str = ""
    """The commit a remote workflow's YAML was fetched at."""


def _check_remote(url: str) -> None:
    if not url.startswith("https://") or any(c.isspace() for c in url):
        raise Invalid(
            "url: a remote workflow is fetched from an https:// git repository", field="url"
        )


class WorkflowService:
    def __init__(self, db: Database, resources: ResourceService, access: ResourceAccess) -> None:
        self.db = db
        self.resources = resources
        self.access = access
        self.marketplace_yaml: Callable[[Resource], Awaitable[YamlToRun]] | None = None
        """What a marketplace workflow runs now (set by the runtime to the marketplace's)."""

    @staticmethod
    def spec_of(resource: Resource | Any) -> WorkflowSpec:
        return msgspec.convert(resource.spec, WorkflowSpec)

    @staticmethod
    def check(yaml: str, name: str = "") -> LoadedWorkflow:
        """The workflow in ``yaml``, or ``WorkflowInvalid`` (422) with every problem."""
        return load(yaml, source="yaml", name=name)

    # --- reading --------------------------------------------------------------------------------

    async def get(self, principal: Principal, ref: ResourceRef) -> Resource:
        return await self.access.get(principal, ref, WORKFLOW_KIND)

    async def require(self, principal: Principal, ref: ResourceRef, level: str) -> Resource:
        return await self.access.require(principal, ref, level, WORKFLOW_KIND)

    async def list_workflows(
        self,
        principal: Principal,
        *,
        owner: str | None = None,
        favorite: bool = False,
        marketplace: bool | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Resource], int]:
        """Workflows the caller sees; ``marketplace``: only the marketplace workflows they use
        (True) or only the others, My Workflows (False)."""
        where = None
        if marketplace is not None:
            used = col(Resource.id).in_(select(MarketplaceSubscription.resource_id))
            where = used if marketplace else ~used
        if not favorite:
            return await self.access.list_visible(
                principal, kind=WORKFLOW_KIND, owner=owner, where=where, limit=limit,
                offset=offset,
            )  # fmt: skip
        favorites = await self.favorites(principal)
        everything, _ = await self.access.list_visible(
            principal, kind=WORKFLOW_KIND, owner=owner, where=where, limit=10_000
        )
        chosen = [r for r in everything if r.id in favorites]
        return chosen[offset : offset + limit], len(chosen)

    async def favorites(self, principal: Principal) -> set[int]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(WorkflowFavorite.resource_id).where(
                    col(WorkflowFavorite.user_id) == principal.user_id
                )
            )
            return set(rows)

    async def yaml_of(self, resource: Resource, version: int | None = None) -> WorkflowVersion:
        """A local workflow's YAML at ``version`` (the current one by default)."""
        wanted = version if version is not None else self.spec_of(resource).version
        async with self.db.session() as session:
            row = (
                await session.exec(
                    select(WorkflowVersion)
                    .where(col(WorkflowVersion.resource_id) == resource.id)
                    .where(col(WorkflowVersion.version) == wanted)
                )
            ).first()
        if row is None:
            raise NotFound(
                f"pw://{resource.owner}/{resource.name} has no version {wanted}",
                reason="version-not-found",
            )
        return row

    async def yaml_to_run(self, resource: Resource) -> YamlToRun:
        """What a run of ``resource`` runs: a local workflow's current version, a remote
        workflow's YAML fetched now from its repository, or a marketplace workflow's item
        version (the newest, or the pinned one)."""
        spec = self.spec_of(resource)
        if spec.source == "marketplace":
            if self.marketplace_yaml is None:
                raise NotFound("the marketplace is not available here", reason="no-marketplace")
            return await self.marketplace_yaml(resource)
        if spec.source == "remote":
            fetched = await fetch_workflow(spec.url, spec.ref, spec.path)
            return YamlToRun(version=0, yaml=fetched.yaml, commit=fetched.commit)
        current = await self.yaml_of(resource)
        return YamlToRun(version=current.version, yaml=current.yaml)

    async def versions(self, principal: Principal, ref: ResourceRef) -> list[WorkflowVersion]:
        resource = await self.get(principal, ref)
        async with self.db.session() as session:
            rows = await session.exec(
                select(WorkflowVersion)
                .where(col(WorkflowVersion.resource_id) == resource.id)
                .order_by(col(WorkflowVersion.version).desc())
            )
            return list(rows)

    # --- changing -------------------------------------------------------------------------------

    @staticmethod
    def _check_description(description: str) -> None:
        if len(description) > MAX_DESCRIPTION:
            raise Invalid(
                f"description: at most {MAX_DESCRIPTION} characters ({len(description)} given)",
                field="description",
            )

    async def create(self, principal: Principal, data: WorkflowCreate) -> Resource:
        WORKFLOW_USER_NAME.check(data.name, "name")
        self._check_description(data.description)
        yaml = data.yaml if data.yaml.strip() else STARTER_YAML
        if data.source == "local":
            self.check(yaml, data.name)
        else:
            _check_remote(data.url)
        spec = WorkflowSpec(
            source=data.source,
            url=data.url,
            ref=data.ref,
            path=data.path,
            app=data.app,
            version=1 if data.source == "local" else 0,
        )
        created = await self.resources.create(
            WORKFLOW_KIND,
            org=principal.org,
            owner=principal.username,
            name=data.name,
            spec=msgspec.to_builtins(spec),
            desired_state="active",
            description=data.description,
            tags=[t.strip() for t in data.tags if t.strip()],
            actor=principal.username,
        )
        if data.source == "local":
            await self._add_version(created.id, 1, yaml, principal.username)
        return await self.get(principal, ResourceRef(created.owner, created.name))

    async def _add_version(self, resource_id: int, version: int, yaml: str, by: str) -> None:
        async with self.db.session() as session:
            session.add(
                WorkflowVersion(resource_id=resource_id, version=version, yaml=yaml, created_by=by)
            )
            await session.commit()

    async def update(
        self, principal: Principal, ref: ResourceRef, data: WorkflowUpdate
    ) -> Resource:
        resource = await self.require(principal, ref, "edit")
        assert resource.id is not None
        spec = self.spec_of(resource)
        if data.description is not None:
            self._check_description(data.description)
        changes: dict[str, Any] = {}
        if data.yaml is not None:
            if spec.source != "local":
                where = (
                    "the marketplace item's"
                    if spec.source == "marketplace"
                    else "in its repository"
                )
                raise Invalid(f"yaml: a {spec.source} workflow's YAML is {where}", field="yaml")
            self.check(data.yaml, resource.name)
            current = await self.yaml_of(resource)
            if current.yaml != data.yaml:
                changes["version"] = spec.version + 1
        for name in ("url", "ref", "path", "app"):
            value = getattr(data, name)
            if value is not None:
                if name != "app" and spec.source != "remote":
                    raise Invalid(f"{name}: only a remote workflow has one", field=name)
                changes[name] = value
        if "url" in changes:
            _check_remote(changes["url"])
        await self.resources.describe(resource.id, description=data.description, tags=data.tags)
        if changes:
            if "version" in changes:
                assert data.yaml is not None
                await self._add_version(
                    resource.id, changes["version"], data.yaml, principal.username
                )
            new_spec = msgspec.structs.replace(spec, **changes)
            await self.resources.set_desired(
                resource.id, spec=msgspec.to_builtins(new_spec), actor=principal.username
            )
        return await self.get(principal, ref)

    async def delete(self, principal: Principal, ref: ResourceRef) -> None:
        resource = await self.require(principal, ref, "owner")
        assert resource.id is not None
        await self.resources.delete(resource.id, actor=principal.username)

    async def set_favorite(self, principal: Principal, ref: ResourceRef, favorite: bool) -> None:
        resource = await self.get(principal, ref)
        async with self.db.session() as session:
            await session.exec(
                sql_delete(WorkflowFavorite)
                .where(col(WorkflowFavorite.user_id) == principal.user_id)
                .where(col(WorkflowFavorite.resource_id) == resource.id)
            )
            if favorite:
                assert resource.id is not None
                session.add(WorkflowFavorite(user_id=principal.user_id, resource_id=resource.id))
            await session.commit()
