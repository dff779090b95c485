"""What each kind of resource is in the marketplace, in one table keyed by resource kind.

An entry says which marketplace type the kind is, how a version's snapshot is taken from a
resource of the kind (a workflow's YAML, a cluster's configuration, a storage's definition) and
how a fork makes a new resource of the caller's from a snapshot. A new kind joins with one entry
in :func:`item_kinds`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from sqlmodel import col, select

from corral_core.clusters.accounts import CloudAccounts
from corral_core.clusters.service import ClusterService
from corral_core.clusters.spec import CLUSTER_KIND
from corral_core.db import Database
from corral_core.identity.models import Group
from corral_core.identity.roles import Principal
from corral_core.resources.models import Resource
from corral_core.storage.service import StorageService
from corral_core.storage.spec import DESCRIPTION_MAX as STORAGE_DESCRIPTION_MAX
from corral_core.storage.spec import STORAGE_KIND
from corral_core.workflows.service import MAX_DESCRIPTION, WorkflowService
from corral_core.workflows.spec import WORKFLOW_KIND
from corral_sdk.config import describe_validation_error
from corral_sdk.errors import Invalid, NotFound
from corral_sdk.wire import ClusterCreate, MarketplaceFork, StorageCreate, WorkflowCreate

__all__ = ["ClusterItems", "ItemKind", "Snapshot", "StorageItems", "WorkflowItems", "item_kinds"]


@dataclass(frozen=True)
class Snapshot:
    definition: dict[str, Any]
    """What a version keeps, never changed afterwards."""
    subtype: str
    """``local`` (``local workflow``), ``aws`` (``aws compute``)..."""


class ItemKind(Protocol):
    type: str
    """The marketplace type: ``workflow``, ``compute`` or ``storage``."""
    usable: bool
    """Whether users can Use (subscribe to) it; every kind can be forked."""

    async def snapshot(self, principal: Principal, resource: Resource) -> Snapshot:
        """The definition of ``resource`` (which ``principal`` owns) as a version keeps it;
        ``Invalid`` naming ``source`` if it cannot be published."""
        ...

    async def fork(
        self,
        principal: Principal,
        definition: dict[str, Any],
        request: MarketplaceFork,
        *,
        tags: list[str],
        description: str,
    ) -> Resource:
        """A new resource of ``principal`` made from ``definition``, named ``request.name``."""
        ...


async def _org_has_group(db: Database, principal: Principal, group: str) -> bool:
    async with db.session() as session:
        found = await session.exec(
            select(Group.id)
            .where(col(Group.org_id) == principal.org_id)
            .where(col(Group.name) == group)
        )
        return found.first() is not None


async def _group_for(db: Database, principal: Principal, group: str) -> str:
    """The group a copy's use is accounted to: the publisher's, when the caller's organization
    has one of that name (a group of another organization means nothing in theirs)."""
    return group if group and await _org_has_group(db, principal, group) else ""


def _no_persistent(request: MarketplaceFork, what: str) -> None:
    if request.persistent is not None:
        raise Invalid(f"persistent: a {what} fork has no such setting (storage only)",
                      field="persistent")  # fmt: skip


class WorkflowItems:
    type = "workflow"
    usable = True

    def __init__(self, workflows: WorkflowService) -> None:
        self.workflows = workflows

    async def snapshot(self, principal: Principal, resource: Resource) -> Snapshot:
        spec = self.workflows.spec_of(resource)
        if spec.source == "marketplace":
            raise Invalid(
                f"source: {resource.name} is a marketplace workflow you use, not yours to "
                "publish (fork it to make your own)",
                field="source",
            )
        # a remote workflow's YAML is fetched now: the version keeps what it was
        current = await self.workflows.yaml_to_run(resource)
        return Snapshot(definition={"yaml": current.yaml, "app": spec.app}, subtype=spec.source)

    async def fork(
        self,
        principal: Principal,
        definition: dict[str, Any],
        request: MarketplaceFork,
        *,
        tags: list[str],
        description: str,
    ) -> Resource:
        _no_persistent(request, "workflow")
        created = await self.workflows.create(
            principal,
            WorkflowCreate(
                name=request.name,
                yaml=str(definition["yaml"]),
                app=bool(definition.get("app")),
                tags=tags,
                description=description[:MAX_DESCRIPTION],
            ),
        )
        if request.display_name:
            assert created.id is not None
            await self.workflows.resources.describe(created.id, display_name=request.display_name)
        return created


class ClusterItems:
    type = "compute"
    usable = False

    def __init__(self, clusters: ClusterService, accounts: CloudAccounts) -> None:
        self.clusters = clusters
        self.accounts = accounts

    async def snapshot(self, principal: Principal, resource: Resource) -> Snapshot:
        definition = dict(resource.spec)
        if definition.get("type") != "cloud":
            return Snapshot(definition=definition, subtype="existing")
        try:
            account = await self.accounts.get(resource.org, definition["cloud"]["cloud_account"])
        except NotFound:
            return Snapshot(definition=definition, subtype="cloud")
        return Snapshot(definition=definition, subtype=account.provider)

    async def fork(
        self,
        principal: Principal,
        definition: dict[str, Any],
        request: MarketplaceFork,
        *,
        tags: list[str],
        description: str,
    ) -> Resource:
        _no_persistent(request, "compute")
        fields = dict(definition)
        fields["group"] = await _group_for(self.clusters.db, principal, fields.get("group", ""))
        try:
            data = msgspec.convert(
                {
                    **fields,
                    "name": request.name,
                    "display_name": request.display_name,
                    "tags": tags,
                    "description": description[:100],
                },
                ClusterCreate,
            )
        except msgspec.ValidationError as exc:
            field, message = describe_validation_error(exc, prefix="definition")
            raise Invalid(f"the version's configuration is not a cluster's: {message}",
                          field=field) from None  # fmt: skip
        return await self.clusters.create(principal, data)


class StorageItems:
    type = "storage"
    usable = False

    def __init__(self, storage: StorageService) -> None:
        self.storage = storage

    async def snapshot(self, principal: Principal, resource: Resource) -> Snapshot:
        definition = dict(resource.spec)
        return Snapshot(definition=definition, subtype=str(definition["type"]))

    async def fork(
        self,
        principal: Principal,
        definition: dict[str, Any],
        request: MarketplaceFork,
        *,
        tags: list[str],
        description: str,
    ) -> Resource:
        """A stopped storage of the caller's; ``persistent`` (when given) decides whether it
        is ephemeral (only Lustre may be)."""
        ephemeral = bool(definition.get("ephemeral"))
        if request.persistent is not None:
            ephemeral = not request.persistent
        data = StorageCreate(
            name=request.name,
            type=str(definition["type"]),
            cloud_account=str(definition.get("cloud_account", "")),
            storage_options=dict(definition.get("storage_options") or {}),
            ephemeral=ephemeral,
            group=await _group_for(self.storage.db, principal, definition.get("group", "")),
            description=description[:STORAGE_DESCRIPTION_MAX],
            tags=tags,
            display_name=request.display_name,
        )
        return await self.storage.create(principal, data)


def item_kinds(
    workflows: WorkflowService,
    clusters: ClusterService,
    accounts: CloudAccounts,
    storage: StorageService,
) -> dict[str, ItemKind]:
    """The table: resource kind → what it is in the marketplace."""
    return {
        WORKFLOW_KIND: WorkflowItems(workflows),
        CLUSTER_KIND: ClusterItems(clusters, accounts),
        STORAGE_KIND: StorageItems(storage),
    }
