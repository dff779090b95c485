"""The marketplace: browse and search items, publish, edit, delete, publish and delete versions,
use (subscribe to) a workflow item, fork an item into a resource of your own, favourites.

An item you cannot see does not exist for you (404), whatever its slug. ``org`` picks the
organization when several publish an item of the same slug."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post, put
from litestar.params import FromPath, JSONBody, QueryParameter

from corral_api.params import Limit, Offset
from corral_api.routes.workflows import workflow_info
from corral_api.security import Caller, RuntimeDep
from corral_core.marketplace.service import Browse
from corral_sdk.wire import (
    MarketplaceFork,
    MarketplaceForked,
    MarketplaceItemInfo,
    MarketplaceList,
    MarketplacePublish,
    MarketplaceType,
    MarketplaceUpdate,
    MarketplaceUse,
    MarketplaceVersionCreate,
    MarketplaceVersionInfo,
    WorkflowInfo,
)

__all__ = ["MarketplaceController"]

Slug = FromPath[str]
Org = Annotated[
    str | None,
    QueryParameter(name="org", max_length=63, description="the publisher's organization"),
]
Flag = Annotated[bool, QueryParameter(description="narrow the list when true")]


class MarketplaceController(Controller):
    path = "/api/marketplace"
    tags = ["marketplace"]

    @get(
        "/",
        summary="Items you can see: without type, the home page (at most 10 of each type, "
        "featured first); with type, every match",
    )
    async def list_items(
        self,
        principal: Caller,
        runtime: RuntimeDep,
        q: Annotated[
            str,
            QueryParameter(
                max_length=255, description="a part of the name, type or publisher (any case)"
            ),
        ] = "",
        type: Annotated[MarketplaceType | None, QueryParameter(name="type")] = None,
        my_items: Flag = False,
        my_org: Flag = False,
        favorites: Flag = False,
        featured: Flag = False,
        verified: Flag = False,
        modifiable: Flag = False,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> MarketplaceList:
        browse = Browse(
            q=q,
            type=type,
            my_items=my_items,
            my_org=my_org,
            favorites=favorites,
            featured=featured,
            verified=verified,
            modifiable=modifiable,
        )
        rows, total, counts = await runtime.marketplace.browse(
            principal, browse, limit=limit, offset=offset
        )
        return MarketplaceList(
            items=await runtime.marketplace.infos(principal, rows),
            total=total,
            limit=limit if type is not None else 10,
            offset=offset if type is not None else 0,
            counts=counts,
        )

    @post(
        "/",
        summary="Publish one of your workflows or clusters; its first version, v1.0.0, is a "
        "snapshot of it now",
    )
    async def publish_item(
        self, data: JSONBody[MarketplacePublish], principal: Caller, runtime: RuntimeDep
    ) -> MarketplaceItemInfo:
        item = await runtime.marketplace.publish(principal, data)
        return await runtime.marketplace.info(principal, item)

    @get("/{slug:str}", summary="One item")
    async def get_item(
        self, slug: Slug, principal: Caller, runtime: RuntimeDep, org: Org = None
    ) -> MarketplaceItemInfo:
        item = await runtime.marketplace.find(principal, slug, org)
        return await runtime.marketplace.info(principal, item)

    @patch(
        "/{slug:str}",
        summary="Edit an item (its publisher or an org admin; the admin settings need "
        "org:admin or org:settings)",
    )
    async def update_item(
        self,
        slug: Slug,
        data: JSONBody[MarketplaceUpdate],
        principal: Caller,
        runtime: RuntimeDep,
        org: Org = None,
    ) -> MarketplaceItemInfo:
        item = await runtime.marketplace.update(principal, slug, data, org)
        return await runtime.marketplace.info(principal, item)

    @delete(
        "/{slug:str}",
        summary="Delete an item and its versions; forks stay, marketplace workflows using it "
        "stay, broken",
    )
    async def delete_item(
        self, slug: Slug, principal: Caller, runtime: RuntimeDep, org: Org = None
    ) -> None:
        await runtime.marketplace.delete(principal, slug, org)

    @get("/{slug:str}/versions", summary="An item's versions, newest first")
    async def list_versions(
        self, slug: Slug, principal: Caller, runtime: RuntimeDep, org: Org = None
    ) -> list[MarketplaceVersionInfo]:
        item = await runtime.marketplace.find(principal, slug, org)
        return [
            runtime.marketplace.version_info(principal, item, row, full=False)
            for row in await runtime.marketplace.versions(item)
        ]

    @post(
        "/{slug:str}/versions",
        summary="Publish a new version: a snapshot of the item's resource (or the one named)",
    )
    async def publish_version(
        self,
        slug: Slug,
        data: JSONBody[MarketplaceVersionCreate],
        principal: Caller,
        runtime: RuntimeDep,
        org: Org = None,
    ) -> MarketplaceVersionInfo:
        item, row = await runtime.marketplace.publish_version(principal, slug, data, org)
        return runtime.marketplace.version_info(principal, item, row, full=True)

    @get(
        "/{slug:str}/versions/{version:str}",
        summary="One version with its snapshot (latest: the newest)",
    )
    async def get_version(
        self,
        slug: Slug,
        version: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
        org: Org = None,
    ) -> MarketplaceVersionInfo:
        item = await runtime.marketplace.find(principal, slug, org)
        row = await runtime.marketplace.version(item, version)
        return runtime.marketplace.version_info(principal, item, row, full=True)

    @delete(
        "/{slug:str}/versions/{version:str}",
        summary="Delete a version (not the last); marketplace workflows pinned to it stay, broken",
    )
    async def delete_version(
        self,
        slug: Slug,
        version: FromPath[str],
        principal: Caller,
        runtime: RuntimeDep,
        org: Org = None,
    ) -> None:
        await runtime.marketplace.delete_version(principal, slug, version, org)

    @post(
        "/{slug:str}/use",
        summary="Use a workflow item: a marketplace workflow of yours running latest (which "
        "follows the item) or a pinned version",
    )
    async def use_item(
        self,
        slug: Slug,
        data: JSONBody[MarketplaceUse],
        principal: Caller,
        runtime: RuntimeDep,
        org: Org = None,
    ) -> WorkflowInfo:
        row = await runtime.marketplace_copies.use(principal, slug, data.version, org)
        used = await runtime.marketplace_copies.subscriptions([row.id])
        return workflow_info(row, marketplace=used.get(row.id or 0))

    @post(
        "/{slug:str}/fork",
        summary="Fork an item: a new workflow or cluster of yours from a version, tagged with "
        "it, independent of the item from then on",
    )
    async def fork_item(
        self,
        slug: Slug,
        data: JSONBody[MarketplaceFork],
        principal: Caller,
        runtime: RuntimeDep,
        org: Org = None,
    ) -> MarketplaceForked:
        return await runtime.marketplace_copies.fork(principal, slug, data, org)

    @put("/{slug:str}/favorite", summary="Make an item one of your favourites", status_code=204)
    async def favorite(
        self, slug: Slug, principal: Caller, runtime: RuntimeDep, org: Org = None
    ) -> None:
        await runtime.marketplace.set_favorite(principal, slug, True, org)

    @delete("/{slug:str}/favorite", summary="No longer a favourite")
    async def unfavorite(
        self, slug: Slug, principal: Caller, runtime: RuntimeDep, org: Org = None
    ) -> None:
        await runtime.marketplace.set_favorite(principal, slug, False, org)
