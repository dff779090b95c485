"""The marketplace catalogue: publish, browse, read, edit and delete items and their versions,
and favourites; who sees and who may change an item.

Who sees an item (anyone else gets 404, even naming its slug): its publisher, org admins
(``org:admin``, ``org:settings``) of its organization, platform admins, and by its privacy
everyone; users of its organization and its partners (the organization managing it and the
organizations it manages); users of its organization; or members of its groups. Who changes
it: its publisher and those org admins; only they set ``verified``, ``featured`` and
``publish_as_organization``.

Slugs are unique in an organization, so two organizations' items may share one: a slug means
the caller's own organization's item first, else the one item of that slug they can see (409
naming the organizations when there are several: ``org`` picks one).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, func, or_, true, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from corral_core.db import Database, utcnow
from corral_core.identity.models import Group, Org
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal, Role
from corral_core.marketplace.kinds import ItemKind
from corral_core.marketplace.models import (
    MarketplaceFavorite,
    MarketplaceItem,
    MarketplaceItemGroup,
    MarketplaceSubscription,
    MarketplaceVersion,
)
from corral_core.marketplace.spec import (
    DESCRIPTION_MAX,
    FIRST_VERSION,
    HOME_PER_TYPE,
    LATEST,
    NAME_MAX,
    SLUG,
    SUMMARY_MAX,
    TYPES,
    VERSION,
)
from corral_core.resources.access import OWNER, ResourceAccess
from corral_core.resources.models import Resource
from corral_sdk.errors import Conflict, Invalid, NotFound, PermissionDenied
from corral_sdk.wire import (
    MarketplaceItemInfo,
    MarketplacePublish,
    MarketplaceUpdate,
    MarketplaceVersionCreate,
    MarketplaceVersionInfo,
)

__all__ = ["Browse", "MarketplaceService"]

ADMIN_SETTINGS = ("verified", "featured", "publish_as_organization")


class Browse:
    """The filters of a listing (each boolean narrows it when true)."""

    def __init__(
        self,
        *,
        q: str = "",
        type: str | None = None,
        my_items: bool = False,
        my_org: bool = False,
        favorites: bool = False,
        featured: bool = False,
        verified: bool = False,
        modifiable: bool = False,
    ) -> None:
        if type is not None and type not in TYPES:
            raise Invalid(f"type: {type!r} is not one of {', '.join(TYPES)}", field="type")
        self.q, self.type = q.strip(), type
        self.my_items, self.my_org, self.favorites = my_items, my_org, favorites
        self.featured, self.verified, self.modifiable = featured, verified, modifiable


def _check_text(data: MarketplacePublish | MarketplaceUpdate) -> None:
    if data.name is not None and not (0 < len(data.name.strip()) <= NAME_MAX):
        raise Invalid(f"name: 1 to {NAME_MAX} characters, not blank", field="name")
    if data.slug is not None:
        SLUG.check(data.slug, "slug")
    if data.summary is not None and len(data.summary) > SUMMARY_MAX:
        raise Invalid(
            f"summary: at most {SUMMARY_MAX} characters ({len(data.summary)} given)",
            field="summary",
        )
    if data.description is not None and len(data.description) > DESCRIPTION_MAX:
        raise Invalid(
            f"description: at most {DESCRIPTION_MAX} characters ({len(data.description)} given)",
            field="description",
        )


class MarketplaceService:
    def __init__(self, db: Database, access: ResourceAccess, kinds: dict[str, ItemKind]) -> None:
        self.db = db
        self.access = access
        self.kinds = kinds
        """The item kinds by resource kind (:func:`~.kinds.item_kinds`)."""

    # --- who sees and who changes ---------------------------------------------------------------

    async def _partners(self, principal: Principal) -> list[int]:
        """The organizations partnered with the caller's: its manager and those it manages."""
        async with self.db.session() as session:
            managed = list(
                await session.exec(select(Org.id).where(col(Org.managed_by) == principal.org_id))
            )
            manager = (
                await session.exec(select(Org.managed_by).where(col(Org.id) == principal.org_id))
            ).first()
        return [i for i in [*managed, manager] if i is not None]

    def _visible(self, principal: Principal, partners: Sequence[int]) -> Any:
        if principal.platform_admin:
            return true()
        in_groups = select(MarketplaceItemGroup.item_id).where(
            col(MarketplaceItemGroup.group_id).in_(list(principal.group_ids) or [-1])
        )
        own_org = col(MarketplaceItem.org_id) == principal.org_id
        privacy = col(MarketplaceItem.privacy)
        conditions = [
            privacy == "everyone",
            and_(privacy == "org_and_partners",
                 col(MarketplaceItem.org_id).in_([principal.org_id, *partners])),
            and_(privacy == "org", own_org),
            and_(privacy == "groups", col(MarketplaceItem.id).in_(in_groups)),
            and_(own_org, col(MarketplaceItem.owner) == principal.username),
        ]  # fmt: skip
        if principal.has(Role.ORG_SETTINGS):  # org admins look after their org's items
            conditions.append(own_org)
        return or_(*conditions)

    @staticmethod
    def is_admin(principal: Principal, org_id: int) -> bool:
        """May set the admin settings of ``org_id``'s items."""
        return principal.platform_admin or (
            org_id == principal.org_id and principal.has(Role.ORG_SETTINGS)
        )

    @classmethod
    def may_modify(cls, principal: Principal, item: MarketplaceItem) -> bool:
        return cls.is_admin(principal, item.org_id) or (
            item.org_id == principal.org_id and item.owner == principal.username
        )

    async def find(
        self, principal: Principal, slug: str, org: str | None = None
    ) -> MarketplaceItem:
        """The item ``slug`` the caller can see (see the module's docstring), or 404."""
        query = (
            select(MarketplaceItem, Org.name)
            .join(Org, col(Org.id) == col(MarketplaceItem.org_id))
            .where(col(MarketplaceItem.slug) == slug)
            .where(self._visible(principal, await self._partners(principal)))
        )
        if org:
            query = query.where(col(Org.name) == org)
        async with self.db.session() as session:
            rows = list(await session.exec(query))
        own = [item for item, _ in rows if item.org_id == principal.org_id]
        if own:
            return own[0]
        if len(rows) == 1:
            return rows[0][0]
        if not rows:
            raise NotFound(
                f"the marketplace has no item {slug!r}"
                + (f" of organization {org!r}" if org else ""),
                reason="marketplace-item-not-found",
            )
        orgs = sorted(name for _, name in rows)
        raise Conflict(
            f"several organizations publish an item {slug!r} ({', '.join(orgs)}): name one "
            "with org",
            reason="marketplace-slug-ambiguous",
            details={"orgs": orgs},
        )

    async def sees(self, principal: Principal, item_id: int) -> bool:
        """Whether the caller can see item ``item_id``."""
        query = (
            select(MarketplaceItem.id)
            .where(col(MarketplaceItem.id) == item_id)
            .where(self._visible(principal, await self._partners(principal)))
        )
        async with self.db.session() as session:
            return (await session.exec(query)).first() is not None

    async def editable(
        self, principal: Principal, slug: str, org: str | None = None
    ) -> MarketplaceItem:
        """The item if the caller may change it: 404 if they cannot see it, 403 if they see
        it but it is not theirs."""
        item = await self.find(principal, slug, org)
        if not self.may_modify(principal, item):
            raise PermissionDenied(
                f"{item.slug} is {item.owner}'s: only its publisher and the admins of its "
                "organization change it",
                reason="marketplace-item-not-yours",
            )
        return item

    # --- reading --------------------------------------------------------------------------------

    async def versions(self, item: MarketplaceItem) -> list[MarketplaceVersion]:
        """Newest first."""
        async with self.db.session() as session:
            rows = await session.exec(
                select(MarketplaceVersion)
                .where(col(MarketplaceVersion.item_id) == item.id)
                .order_by(col(MarketplaceVersion.id).desc())
            )
            return list(rows)

    async def version(self, item: MarketplaceItem, version: str) -> MarketplaceVersion:
        """Version ``version`` of ``item`` (``latest``: the newest); 404 when there is none."""
        async with self.db.session() as session:
            query = select(MarketplaceVersion).where(col(MarketplaceVersion.item_id) == item.id)
            if version == LATEST:
                query = query.order_by(col(MarketplaceVersion.id).desc()).limit(1)
            else:
                query = query.where(col(MarketplaceVersion.version) == version)
            row = (await session.exec(query)).first()
        if row is None:
            raise NotFound(
                f"{item.slug} has no version {version!r}",
                reason="marketplace-version-not-found",
            )
        return row

    async def browse(
        self, principal: Principal, browse: Browse, *, limit: int = 50, offset: int = 0
    ) -> tuple[list[MarketplaceItem], int, dict[str, int]]:
        """The items matching ``browse`` the caller can see, featured first, then by name;
        how many match in all; and how many of each type. Without a type, the home page: at
        most :data:`HOME_PER_TYPE` of each type."""
        query: Any = (
            select(MarketplaceItem)
            .join(Org, col(Org.id) == col(MarketplaceItem.org_id))
            .where(self._visible(principal, await self._partners(principal)))
        )
        for condition in self._filters(principal, browse):
            query = query.where(condition)
        order = (
            col(MarketplaceItem.featured).desc(),
            func.lower(col(MarketplaceItem.name)),
            col(MarketplaceItem.id),
        )
        async with self.db.session() as session:
            matching = query.subquery()
            counted = await session.exec(
                select(matching.c.type, func.count()).group_by(matching.c.type)
            )
            counts = {kind: 0 for kind in TYPES} | {kind: int(n) for kind, n in counted}
            if browse.type is not None:
                typed = query.where(col(MarketplaceItem.type) == browse.type)
                rows = list(await session.exec(typed.order_by(*order).limit(limit).offset(offset)))
                return rows, counts[browse.type], counts
            rows = []
            for kind in TYPES:
                typed = query.where(col(MarketplaceItem.type) == kind)
                rows += list(await session.exec(typed.order_by(*order).limit(HOME_PER_TYPE)))
        return rows, sum(counts.values()), counts

    def _filters(self, principal: Principal, browse: Browse) -> list[Any]:
        own_org = col(MarketplaceItem.org_id) == principal.org_id
        mine = and_(own_org, col(MarketplaceItem.owner) == principal.username)
        filters: list[Any] = []
        if browse.q:
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", browse.q.lower()) + "%"

            def like(column: Any) -> Any:
                return func.lower(column).like(pattern, escape="\\")

            as_org = col(MarketplaceItem.publish_as_organization)
            filters.append(
                or_(
                    like(col(MarketplaceItem.name)),
                    like(col(MarketplaceItem.slug)),
                    like(col(MarketplaceItem.subtype) + " " + col(MarketplaceItem.type)),
                    # the creator: the publisher shown, never a username hidden behind the org
                    and_(as_org.is_(False), like(col(MarketplaceItem.owner))),
                    and_(as_org.is_(True), or_(like(col(Org.name)), like(col(Org.display_name)))),
                )
            )
        if browse.my_items:
            filters.append(mine)
        if browse.my_org:
            filters.append(own_org)
        if browse.favorites:
            filters.append(
                col(MarketplaceItem.id).in_(
                    select(MarketplaceFavorite.item_id).where(
                        col(MarketplaceFavorite.user_id) == principal.user_id
                    )
                )
            )
        if browse.featured:
            filters.append(col(MarketplaceItem.featured).is_(True))
        if browse.verified:
            filters.append(col(MarketplaceItem.verified).is_(True))
        if browse.modifiable and not principal.platform_admin:
            filters.append(own_org if principal.has(Role.ORG_SETTINGS) else mine)
        return filters

    async def infos(
        self, principal: Principal, items: Sequence[MarketplaceItem]
    ) -> list[MarketplaceItemInfo]:
        """``items`` as the caller sees them (a few queries for all of them)."""
        ids = [item.id for item in items]
        async with self.db.session() as session:
            orgs = {
                org.id: org
                for org in await session.exec(
                    select(Org).where(col(Org.id).in_({item.org_id for item in items}))
                )
            }
            versions: dict[int, list[str]] = {}
            for item_id, version in await session.exec(
                select(MarketplaceVersion.item_id, MarketplaceVersion.version)
                .where(col(MarketplaceVersion.item_id).in_(ids))
                .order_by(col(MarketplaceVersion.id).desc())
            ):
                versions.setdefault(item_id, []).append(version)
            groups: dict[int, list[str]] = {}
            for item_id, name in await session.exec(
                select(MarketplaceItemGroup.item_id, Group.name)
                .join(Group, col(Group.id) == col(MarketplaceItemGroup.group_id))
                .where(col(MarketplaceItemGroup.item_id).in_(ids))
                .order_by(col(Group.name))
            ):
                groups.setdefault(item_id, []).append(name)
            favorites = set(
                await session.exec(
                    select(MarketplaceFavorite.item_id)
                    .where(col(MarketplaceFavorite.user_id) == principal.user_id)
                    .where(col(MarketplaceFavorite.item_id).in_(ids))
                )
            )
            sources = {
                row.id: ResourceRef(row.owner, row.name).uri
                for row in await session.exec(
                    select(Resource).where(
                        col(Resource.id).in_([i.source_resource_id for i in items])
                    )
                )
            }
        infos = []
        for item in items:
            assert item.id is not None
            org = orgs[item.org_id]
            modifiable = self.may_modify(principal, item)
            listed = versions.get(item.id, [])
            infos.append(
                MarketplaceItemInfo(
                    slug=item.slug,
                    name=item.name,
                    org=org.name,
                    type=item.type,  # type: ignore[arg-type]
                    subtype=item.subtype,
                    type_label=f"{item.subtype} {item.type}",
                    publisher=(org.display_name or org.name)
                    if item.publish_as_organization
                    else item.owner,
                    owner=item.owner if modifiable or not item.publish_as_organization else "",
                    privacy=item.privacy,  # type: ignore[arg-type]
                    groups=groups.get(item.id, []),
                    summary=item.summary,
                    description=item.description,
                    verified=item.verified,
                    featured=item.featured,
                    publish_as_organization=item.publish_as_organization,
                    latest=listed[0] if listed else "",
                    versions=listed,
                    source=sources.get(item.source_resource_id or -1, "") if modifiable else "",
                    favorite=item.id in favorites,
                    modifiable=modifiable,
                    created_at=item.created_at,
                    updated_at=item.updated_at,
                )
            )
        return infos

    async def info(self, principal: Principal, item: MarketplaceItem) -> MarketplaceItemInfo:
        return (await self.infos(principal, [item]))[0]

    def version_info(
        self, principal: Principal, item: MarketplaceItem, row: MarketplaceVersion, *, full: bool
    ) -> MarketplaceVersionInfo:
        return MarketplaceVersionInfo(
            version=row.version,
            source=row.source if self.may_modify(principal, item) else "",
            created_by=row.created_by,
            created_at=row.created_at,
            definition=dict(row.definition) if full else {},
        )

    # --- publishing and editing -----------------------------------------------------------------

    def _check_admin_settings(
        self,
        principal: Principal,
        org_id: int,
        wanted: dict[str, bool | None],
        current: MarketplaceItem | None,
    ) -> None:
        if self.is_admin(principal, org_id):
            return
        for name in ADMIN_SETTINGS:
            value = wanted.get(name)
            if value is not None and value != (getattr(current, name) if current else False):
                raise PermissionDenied(
                    f"{name}: an admin setting; setting it needs org:admin or org:settings",
                    reason="role-required",
                    details={"field": name},
                )

    async def _group_ids(self, principal: Principal, privacy: str, groups: list[str]) -> list[int]:
        """The ids of ``groups`` (of the caller's organization, which they are a member of)
        for ``groups`` privacy; none for any other."""
        if privacy != "groups":
            if groups:
                raise Invalid(
                    f"groups: only an item with privacy 'groups' has groups (this one's is "
                    f"{privacy!r})",
                    field="groups",
                )
            return []
        if not groups:
            raise Invalid("groups: privacy 'groups' needs at least one group", field="groups")
        async with self.db.session() as session:
            found: dict[str, int] = {
                name: group_id or 0
                for name, group_id in await session.exec(
                    select(Group.name, Group.id)
                    .where(col(Group.org_id) == principal.org_id)
                    .where(col(Group.name).in_(groups))
                )
            }
        ids = []
        for name in dict.fromkeys(groups):
            if name not in found:
                raise Invalid(f"groups: {principal.org} has no group {name!r}", field="groups")
            if found[name] not in principal.group_ids:
                raise Invalid(
                    f"groups: you are not a member of {name!r}; an item is shown only to "
                    "groups you belong to",
                    field="groups",
                )
            ids.append(found[name])
        return ids

    async def _source(
        self, principal: Principal, text: str, field: str
    ) -> tuple[Resource, ItemKind]:
        """The resource ``text`` names, which the caller owns, and its kind's entry."""
        ref = ResourceRef.parse(text, principal.username, field=field)
        try:
            resource = await self.access.require(principal, ref, OWNER)
        except NotFound:
            raise Invalid(f"{field}: {ref.uri} does not exist", field=field) from None
        kind = self.kinds.get(resource.kind)
        if kind is None:
            publishable = ", ".join(sorted(self.kinds))
            raise Invalid(
                f"{field}: {ref.uri} is a {resource.kind}; the marketplace takes: {publishable}",
                field=field,
            )
        return resource, kind

    async def _check_unique(
        self, org_id: int, *, name: str | None, slug: str | None, other_than: int | None
    ) -> None:
        async with self.db.session() as session:
            for field, value in (("name", name), ("slug", slug)):
                if value is None:
                    continue
                query = (
                    select(MarketplaceItem.id)
                    .where(col(MarketplaceItem.org_id) == org_id)
                    .where(getattr(MarketplaceItem, field) == value)
                )
                if other_than is not None:
                    query = query.where(col(MarketplaceItem.id) != other_than)
                if (await session.exec(query)).first() is not None:
                    raise Conflict(
                        f"{field}: your organization's marketplace already has an item "
                        f"{'named' if field == 'name' else 'with the slug'} {value!r}",
                        reason="marketplace-item-exists",
                        details={"field": field},
                    )

    @staticmethod
    def _duplicate(exc: IntegrityError) -> Conflict:
        """A duplicate another request inserted between the check and the write."""
        field = "slug" if "slug" in str(exc.orig) else "name"
        return Conflict(
            f"{field}: your organization's marketplace already has an item with this {field}",
            reason="marketplace-item-exists",
            details={"field": field},
        )

    async def publish(self, principal: Principal, data: MarketplacePublish) -> MarketplaceItem:
        """A new item from a resource of the caller's, with its first version ``v1.0.0``."""
        _check_text(data)
        self._check_admin_settings(
            principal, principal.org_id, {n: getattr(data, n) for n in ADMIN_SETTINGS}, None
        )
        group_ids = await self._group_ids(principal, data.privacy, data.groups)
        resource, kind = await self._source(principal, data.source, "source")
        name = data.name.strip()
        await self._check_unique(principal.org_id, name=name, slug=data.slug, other_than=None)
        snapshot = await kind.snapshot(principal, resource)
        item = MarketplaceItem(
            org_id=principal.org_id,
            owner=principal.username,
            name=name,
            slug=data.slug,
            type=kind.type,
            subtype=snapshot.subtype,
            source_kind=resource.kind,
            source_resource_id=resource.id,
            privacy=data.privacy,
            summary=data.summary,
            description=data.description,
            verified=data.verified,
            featured=data.featured,
            publish_as_organization=data.publish_as_organization,
        )
        async with self.db.session() as session:
            session.add(item)
            try:
                await session.flush()
                assert item.id is not None
                for group_id in group_ids:
                    session.add(MarketplaceItemGroup(item_id=item.id, group_id=group_id))
                session.add(
                    MarketplaceVersion(
                        item_id=item.id,
                        version=FIRST_VERSION,
                        definition=snapshot.definition,
                        source=ResourceRef(resource.owner, resource.name).uri,
                        created_by=principal.username,
                    )
                )
                await session.commit()
            except IntegrityError as exc:
                raise self._duplicate(exc) from None
        return item

    async def update(
        self, principal: Principal, slug: str, data: MarketplaceUpdate, org: str | None = None
    ) -> MarketplaceItem:
        item = await self.editable(principal, slug, org)
        assert item.id is not None
        _check_text(data)
        self._check_admin_settings(
            principal, item.org_id, {n: getattr(data, n) for n in ADMIN_SETTINGS}, item
        )
        privacy = data.privacy or item.privacy
        group_ids: list[int] | None = None
        if data.groups is not None or (data.privacy is not None and data.privacy != item.privacy):
            current = await self._group_names(item.id) if privacy == "groups" else []
            group_ids = await self._group_ids(
                principal, privacy, data.groups if data.groups is not None else current
            )
        name = data.name.strip() if data.name is not None else None
        await self._check_unique(item.org_id, name=name, slug=data.slug, other_than=item.id)
        changes: dict[str, Any] = {
            field: value
            for field, value in (
                ("name", name),
                ("slug", data.slug),
                ("privacy", data.privacy),
                ("summary", data.summary),
                ("description", data.description),
                *((n, getattr(data, n)) for n in ADMIN_SETTINGS),
            )
            if value is not None
        }
        async with self.db.session() as session:
            row = await session.get(MarketplaceItem, item.id)
            if row is None:
                raise NotFound(f"the marketplace has no item {slug!r}")
            for field, value in changes.items():
                setattr(row, field, value)
            row.updated_at = utcnow()
            session.add(row)
            if group_ids is not None:
                await session.exec(
                    delete(MarketplaceItemGroup).where(col(MarketplaceItemGroup.item_id) == item.id)
                )
                for group_id in group_ids:
                    session.add(MarketplaceItemGroup(item_id=item.id, group_id=group_id))
            try:
                await session.commit()
            except IntegrityError as exc:
                raise self._duplicate(exc) from None
            await session.refresh(row)
        if {"name", "slug", "summary"} & changes.keys():
            await self._tell_subscribers(row)
        return row

    async def _group_names(self, item_id: int) -> list[str]:
        async with self.db.session() as session:
            return list(
                await session.exec(
                    select(Group.name)
                    .join(MarketplaceItemGroup, col(MarketplaceItemGroup.group_id) == col(Group.id))
                    .where(col(MarketplaceItemGroup.item_id) == item_id)
                )
            )

    async def _tell_subscribers(self, item: MarketplaceItem) -> None:
        """Subscribers' marketplace workflows show the item's name, slug and summary as they
        are (their names, ``marketplace.<slug>.<version>``, stay what they were)."""
        async with self.db.session() as session:
            await session.exec(
                update(MarketplaceSubscription)
                .where(col(MarketplaceSubscription.item_id) == item.id)
                .values(slug=item.slug)
            )
            rows = list(
                await session.exec(
                    select(Resource, MarketplaceSubscription.version)
                    .join(
                        MarketplaceSubscription,
                        col(MarketplaceSubscription.resource_id) == col(Resource.id),
                    )
                    .where(col(MarketplaceSubscription.item_id) == item.id)
                )
            )
            for resource, version in rows:
                resource.display_name = f"{item.name} {version}"[:255]
                resource.description = item.summary[:100]
                resource.updated_at = utcnow()
                session.add(resource)
            await session.commit()

    async def delete(self, principal: Principal, slug: str, org: str | None = None) -> None:
        """Delete an item and its versions. Forks stay (they are copies); marketplace
        workflows using it stay, broken, saying why."""
        item = await self.editable(principal, slug, org)
        async with self.db.session() as session:
            await session.exec(
                update(MarketplaceSubscription)
                .where(col(MarketplaceSubscription.item_id) == item.id)
                .values(
                    broken=f"the marketplace item {item.name!r} ({item.slug}) was deleted "
                    f"on {utcnow():%Y-%m-%d}",
                    item_id=None,
                    version_id=None,
                )
            )
            await session.exec(delete(MarketplaceItem).where(col(MarketplaceItem.id) == item.id))
            await session.commit()

    # --- versions -------------------------------------------------------------------------------

    async def publish_version(
        self,
        principal: Principal,
        slug: str,
        data: MarketplaceVersionCreate,
        org: str | None = None,
    ) -> tuple[MarketplaceItem, MarketplaceVersion]:
        """A new version: a snapshot of ``data.resource`` (by default the item's source), which
        becomes ``latest``."""
        item = await self.editable(principal, slug, org)
        assert item.id is not None
        VERSION.check(data.version, "version")
        if data.resource:
            resource, _ = await self._source(principal, data.resource, "resource")
        else:
            async with self.db.session() as session:
                found = (
                    await session.get(Resource, item.source_resource_id)
                    if item.source_resource_id is not None
                    else None
                )
            if found is None:
                raise Invalid(
                    f"resource: the resource {item.slug} was published from no longer exists; "
                    "name the one to publish",
                    field="resource",
                )
            resource, _ = await self._source(
                principal, ResourceRef(found.owner, found.name).uri, "resource"
            )
        if resource.kind != item.source_kind:
            raise Invalid(
                f"resource: {item.slug} is a {item.source_kind} item; "
                f"{ResourceRef(resource.owner, resource.name).uri} is a {resource.kind}",
                field="resource",
            )
        snapshot = await self.kinds[resource.kind].snapshot(principal, resource)
        row = MarketplaceVersion(
            item_id=item.id,
            version=data.version,
            definition=snapshot.definition,
            source=ResourceRef(resource.owner, resource.name).uri,
            created_by=principal.username,
        )
        async with self.db.session() as session:
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:
                raise Conflict(
                    f"version: {item.slug} already has a version {data.version!r}",
                    reason="marketplace-version-exists",
                    details={"field": "version"},
                ) from None
            current = await session.get(MarketplaceItem, item.id)
            assert current is not None
            current.updated_at = utcnow()
            session.add(current)
            await session.commit()
            await session.refresh(row)
        return item, row

    async def delete_version(
        self, principal: Principal, slug: str, version: str, org: str | None = None
    ) -> None:
        """Delete a version; marketplace workflows pinned to it stay, broken. The last version
        is not deleted (delete the item)."""
        item = await self.editable(principal, slug, org)
        row = await self.version(item, version)
        if len(await self.versions(item)) == 1:
            raise Conflict(
                f"{version} is the only version of {item.slug}: delete the item instead",
                reason="marketplace-last-version",
            )
        async with self.db.session() as session:
            await session.exec(
                update(MarketplaceSubscription)
                .where(col(MarketplaceSubscription.version_id) == row.id)
                .values(
                    broken=f"version {version} of {item.slug} was deleted on {utcnow():%Y-%m-%d}",
                    version_id=None,
                )
            )
            await session.exec(
                delete(MarketplaceVersion).where(col(MarketplaceVersion.id) == row.id)
            )
            await session.commit()

    # --- favourites -----------------------------------------------------------------------------

    async def set_favorite(
        self, principal: Principal, slug: str, favorite: bool, org: str | None = None
    ) -> None:
        item = await self.find(principal, slug, org)
        assert item.id is not None
        async with self.db.session() as session:
            await session.exec(
                delete(MarketplaceFavorite)
                .where(col(MarketplaceFavorite.user_id) == principal.user_id)
                .where(col(MarketplaceFavorite.item_id) == item.id)
            )
            if favorite:
                session.add(MarketplaceFavorite(user_id=principal.user_id, item_id=item.id))
            await session.commit()
