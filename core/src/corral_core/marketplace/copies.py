"""What users make of items: Use (a marketplace workflow of theirs that runs the item's
``latest`` or a pinned version) and Fork (an independent resource of theirs made from a
version's snapshot); and what a marketplace workflow runs, and through ``uses:``, what
``marketplace/<slug>[/<version>]`` names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import msgspec
from sqlmodel import col, select

from corral_core.db import Database
from corral_core.identity.models import Org
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal
from corral_core.marketplace.models import (
    MarketplaceItem,
    MarketplaceSubscription,
    MarketplaceVersion,
)
from corral_core.marketplace.service import MarketplaceService
from corral_core.marketplace.spec import LATEST, VERSION, subscription_name
from corral_core.resources.models import Resource
from corral_core.resources.service import ResourceService
from corral_core.workflows.service import YamlToRun
from corral_core.workflows.spec import WORKFLOW_KIND, WorkflowSpec
from corral_sdk.errors import Conflict, Invalid, NotFound
from corral_sdk.providers.workflow_source import ResolvedWorkflow
from corral_sdk.wire import MarketplaceFork, MarketplaceForked, WorkflowMarketplace

__all__ = ["MarketplaceCopies"]

PrincipalOf = Callable[[str], Awaitable[Principal]]


class MarketplaceCopies:
    def __init__(
        self,
        db: Database,
        catalogue: MarketplaceService,
        resources: ResourceService,
        principal_of: PrincipalOf,
    ) -> None:
        self.db = db
        self.catalogue = catalogue
        self.resources = resources
        self.principal_of = principal_of
        """A user as a principal (who a marketplace workflow or a run belongs to)."""

    def _check_version(self, version: str) -> None:
        if version != LATEST:
            VERSION.check(version, "version")

    async def _version(self, item: MarketplaceItem, version: str) -> MarketplaceVersion:
        """``version`` of ``item``; a version it does not have is the request's fault (422)."""
        self._check_version(version)
        try:
            return await self.catalogue.version(item, version)
        except NotFound as exc:
            raise Invalid(f"version: {exc.message}", field="version") from None

    # --- Use ------------------------------------------------------------------------------------

    async def use(
        self, principal: Principal, slug: str, version: str = LATEST, org: str | None = None
    ) -> Resource:
        """A marketplace workflow of the caller's: ``marketplace.<slug>.<version>``, shown as
        ``<Name> <version>`` and tagged with the version. 409 if they use it already."""
        item = await self.catalogue.find(principal, slug, org)
        kind = self.catalogue.kinds[item.source_kind]
        if not kind.usable:
            raise Invalid(
                f"{item.slug} is a {item.type} item: fork it to make one of your own "
                "(only workflows are used)",
                field="slug",
            )
        pinned = await self._version(item, version)
        name = subscription_name(item.slug, version)
        async with self.db.session() as session:
            taken = (
                await session.exec(
                    select(Resource.id)
                    .where(col(Resource.owner) == principal.username)
                    .where(col(Resource.name) == name)
                )
            ).first()
        if taken is not None:
            raise Conflict(
                f"you already use {item.slug} at {version}: it is your workflow {name}",
                reason="marketplace-already-used",
            )
        created = await self.resources.create(
            WORKFLOW_KIND,
            org=principal.org,
            owner=principal.username,
            name=name,
            spec=msgspec.to_builtins(WorkflowSpec(source="marketplace")),
            desired_state="active",
            display_name=f"{item.name} {version}"[:255],
            description=item.summary[:100],
            tags=[version],
            actor=principal.username,
        )
        try:
            async with self.db.session() as session:
                session.add(
                    MarketplaceSubscription(
                        resource_id=created.id,
                        item_id=item.id,
                        slug=item.slug,
                        version=version,
                        version_id=None if version == LATEST else pinned.id,
                    )
                )
                await session.commit()
        except BaseException:
            await self.resources.delete(created.id, actor=principal.username)
            raise
        return await self.catalogue.access.get(principal, ResourceRef(created.owner, name))

    async def subscriptions(
        self, resource_ids: Sequence[int | None]
    ) -> dict[int, WorkflowMarketplace]:
        """What each of these marketplace workflows runs (those that are one)."""
        async with self.db.session() as session:
            rows = list(
                await session.exec(
                    select(MarketplaceSubscription).where(
                        col(MarketplaceSubscription.resource_id).in_(
                            [i for i in resource_ids if i is not None]
                        )
                    )
                )
            )
            pinned = {
                row.id: row.version
                for row in await session.exec(
                    select(MarketplaceVersion).where(
                        col(MarketplaceVersion.id).in_([s.version_id for s in rows])
                    )
                )
            }
            latest: dict[int, str] = {}
            for item_id, version in await session.exec(
                select(MarketplaceVersion.item_id, MarketplaceVersion.version)
                .where(col(MarketplaceVersion.item_id).in_([s.item_id for s in rows]))
                .order_by(col(MarketplaceVersion.id))
            ):
                latest[item_id] = version
        found = {}
        for row in rows:
            runs = (
                latest.get(row.item_id or -1, "")
                if row.version == LATEST
                else pinned.get(row.version_id or -1, "")
            )
            found[row.resource_id] = WorkflowMarketplace(
                slug=row.slug, version=row.version, runs="" if row.broken else runs,
                broken=row.broken,
            )  # fmt: skip
        return found

    async def subscribed_yaml(self, resource: Resource) -> YamlToRun:
        """What a run of the marketplace workflow ``resource`` runs now: the item's newest
        version, or the pinned one. 409 when it is broken, 404 when its owner can no longer
        see the item."""
        async with self.db.session() as session:
            row = await session.get(MarketplaceSubscription, resource.id)
            item = (
                await session.get(MarketplaceItem, row.item_id)
                if row is not None and row.item_id is not None
                else None
            )
        uri = ResourceRef(resource.owner, resource.name).uri
        if row is None:
            raise NotFound(f"{uri} is not a marketplace workflow", reason="resource-not-found")
        if row.broken or item is None:
            raise Conflict(
                f"{uri} is broken: {row.broken or 'its marketplace item is gone'}",
                reason="marketplace-workflow-broken",
            )
        # its owner must still see it (privacy may have changed, they may have left a group)
        if not await self.catalogue.sees(await self.principal_of(resource.owner), item.id or 0):
            raise NotFound(
                f"{uri}: the marketplace item {row.slug} is no longer shown to {resource.owner}",
                reason="marketplace-item-not-found",
            )
        version = await self.catalogue.version(item, row.version)
        return YamlToRun(version=0, yaml=str(version.definition["yaml"]), commit=version.version)

    # --- Fork -----------------------------------------------------------------------------------

    async def fork(
        self, principal: Principal, slug: str, data: MarketplaceFork, org: str | None = None
    ) -> MarketplaceForked:
        """A new resource of the caller's from a version's snapshot (``latest`` by default),
        tagged with that version; it never follows the item afterwards."""
        item = await self.catalogue.find(principal, slug, org)
        version = await self._version(item, data.version)
        kind = self.catalogue.kinds[item.source_kind]
        created = await kind.fork(
            principal,
            dict(version.definition),
            data,
            tags=[version.version],
            description=item.summary,
        )
        return MarketplaceForked(
            type=item.type,  # type: ignore[arg-type]
            kind=created.kind,
            uri=ResourceRef(created.owner, created.name).uri,
            owner=created.owner,
            name=created.name,
            version=version.version,
            tags=list(created.tags),
        )

    # --- uses: marketplace/<slug>[/<version>] -----------------------------------------------------

    async def resolve(self, uses: str, *, username: str) -> ResolvedWorkflow:
        """The workflow ``marketplace/<slug>[/<version>]`` names for ``username``: the version
        (``latest`` without one) of the item of that slug they see."""
        reference = uses.removeprefix("marketplace/")
        slug, _, version = reference.partition("/")
        version = version or LATEST
        if not slug or "/" in version:
            raise Invalid("expected marketplace/<slug> or marketplace/<slug>/<version>",
                          field="uses")  # fmt: skip
        self._check_version(version)
        principal = await self.principal_of(username)
        item = await self.catalogue.find(principal, slug)
        if item.type != "workflow":
            raise Invalid(f"{slug} is a {item.type} item, not a workflow", field="uses")
        found = await self.catalogue.version(item, version)
        async with self.db.session() as session:
            org = await session.get(Org, item.org_id)
        # the organization and slug name one item at a time; the version is what ran
        return ResolvedWorkflow(
            yaml=str(found.definition["yaml"]),
            identity=f"marketplace/{org.name if org else item.org_id}/{item.slug}/{found.version}",
            version=found.version,
        )
