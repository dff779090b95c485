"""What each kind of resource is in the marketplace, in one table keyed by resource kind.

An entry says which marketplace type the kind is, how a version's snapshot is taken from a
resource of the kind (a workflow's YAML, a cluster's configuration) and how a fork makes a new
resource of the caller's from a snapshot. Workflows and clusters are here now; storage joins
with one entry (``STORAGE_KIND: StorageItems(...)``, type ``storage``, its subtype the storage
type such as ``aws-lustre``, its fork honouring ``persistent``) once the storage kind exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import msgspec
from sqlmodel import col, select

from corral_core.clusters.accounts import CloudAccounts
from corral_core.clusters.service import ClusterService
from corral_core.clusters.spec import CLUSTER_KIND
from corral_core.identity.models import Group
from corral_core.identity.roles import Principal
from corral_core.resources.models import Resource
from corral_core.workflows.service import MAX_DESCRIPTION, WorkflowService
from corral_core.workflows.spec import WORKFLOW_KIND
from corral_sdk.config import describe_validation_error
from corral_sdk.errors import Invalid, NotFound
from corral_sdk.wire import ClusterCreate, MarketplaceFork, WorkflowCreate

__all__ = ["ClusterItems", "ItemKind", "Snapshot", "WorkflowItems", "item_kinds"]


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


def _no_persistent(request: MarketplaceFork, what: str) -> None:
    if request.persistent:
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
        # the group the publisher's use was accounted to means nothing in another organization
        if fields.get("group") and not await self._org_has_group(principal, fields["group"]):
            fields["group"] = ""
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

    async def _org_has_group(self, principal: Principal, group: str) -> bool:
        async with self.clusters.db.session() as session:
            found = await session.exec(
                select(Group.id)
                .where(col(Group.org_id) == principal.org_id)
                .where(col(Group.name) == group)
            )
            return found.first() is not None


def item_kinds(
    workflows: WorkflowService, clusters: ClusterService, accounts: CloudAccounts
) -> dict[str, ItemKind]:
    """The table: resource kind → what it is in the marketplace."""
    return {
        WORKFLOW_KIND: WorkflowItems(workflows),
        CLUSTER_KIND: ClusterItems(clusters, accounts),
    }
