"""Storage of users: create, change, share, start and stop it (the reconciler provisions and
deletes it with its type's provider), its sessions and logs, and short-lived credentials for
active buckets.

Who may do what (spec §2.6): the owner (and their org admins) everything; groups it is shared
with at ``view_edit`` see and change its definition (not its cloud account or group) and start
and stop it; at ``mount`` they only see that it exists and whether it runs, mount it and get its
credentials. Anyone else, another organization included, gets 404.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import msgspec
from sqlalchemy import delete
from sqlmodel import col, select

from corral_core.cloud_resources.common import check_description
from corral_core.db import Database
from corral_core.identity.models import Grant
from corral_core.identity.names import ResourceRef
from corral_core.identity.roles import Principal, Role
from corral_core.identity.service import IdentityService
from corral_core.plugins import Kernel
from corral_core.resources.access import OWNER, ResourceAccess
from corral_core.resources.models import Resource
from corral_core.resources.service import ResourceService, name_rule
from corral_core.storage.logs import DELETION, LOG_TABS, read_log
from corral_core.storage.models import StorageFavorite, StorageLogLine, StorageSession
from corral_core.storage.sessions import DELETED, StorageSessions, session_label
from corral_core.storage.spec import (
    MOUNT,
    STORAGE_KIND,
    STORAGE_SHARE_LEVELS,
    VIEW_EDIT,
    StorageDefinition,
)
from corral_core.storage.types import StorageTypes, type_label
from corral_sdk.errors import Conflict, Invalid, NotFound, PermissionDenied
from corral_sdk.features import StorageCategory, StorageFeature
from corral_sdk.providers.storage import StorageInfo, StorageState
from corral_sdk.records import StorageTypeRecord
from corral_sdk.wire import (
    StorageCreate,
    StorageCredentials,
    StorageDetails,
    StorageSessionInfo,
    StorageShare,
    StorageShareInfo,
    StorageSummary,
    StorageUpdate,
)

__all__ = ["StorageService", "cost_tags", "definition_of", "session_info"]

log = logging.getLogger("corral.storage")

_DEFINITION_FIELDS = ("storage_options", "ephemeral", "cloud_account")
_OWNER_FIELDS = ("cloud_account", "group")


def cost_tags(
    row: Resource | Any, definition: StorageDefinition, session: StorageSession
) -> dict[str, str]:
    """The tags on what a session's provider makes (cost allocation, as clusters')."""
    return {
        "Name": row.name,
        "User": row.owner,
        "OrganizationID": row.org,
        "GroupID": definition.group or "none",
        "Session": session_label(session.number),
        "SessionID": session.uid,
    }


def definition_of(row: Resource | Any) -> StorageDefinition:
    return msgspec.convert(row.spec, StorageDefinition)


class StorageService:
    def __init__(
        self,
        db: Database,
        kernel: Kernel,
        resources: ResourceService,
        access: ResourceAccess,
        types: StorageTypes,
        identity: IdentityService,
    ) -> None:
        self.db = db
        self.kernel = kernel
        self.resources = resources
        self.access = access
        self.types = types
        self.identity = identity
        self.sessions = StorageSessions(db)

    # --- lookups ------------------------------------------------------------------------------

    async def get(self, principal: Principal, ref: ResourceRef) -> Resource:
        """A storage the caller can see (at any level); 404 otherwise."""
        return await self.access.get(principal, ref, STORAGE_KIND)

    async def require(self, principal: Principal, ref: ResourceRef, level: str) -> Resource:
        return await self.access.require(principal, ref, level, STORAGE_KIND)

    async def list_storage(
        self,
        principal: Principal,
        *,
        category: str = "",
        csp: str = "",
        owner: str = "",
        status: str = "",
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Resource], int]:
        """Storage the caller can see, by category, cloud, owner (namespace) and status."""
        rows, _ = await self.access.list_visible(
            principal,
            kind=STORAGE_KIND,
            owner=owner or None,
            states=[status] if status else (),
            limit=1_000_000,
        )
        kept = [
            r
            for r in rows
            if (not category or r.spec.get("category") == category)
            and (not csp or self.csp_of(r) == csp)
        ]
        return kept[offset : offset + limit], len(kept)

    def record_of(self, row: Resource) -> StorageTypeRecord | None:
        try:
            return self.kernel.storage_type(str(row.spec.get("type", "")))
        except NotFound:
            return None

    def csp_of(self, row: Resource) -> str:
        record = self.record_of(row)
        return record.cloud if record is not None else ""

    async def resolve(self, principal: Principal, uri: str) -> Resource:
        """The storage a URI names: ``pw://owner/name[/path]`` or a provisioned storage's CSP
        URI (``s3://bucket[/path]``), which is found among the caller's visible storage."""
        if uri.startswith("pw://"):
            parts = uri.removeprefix("pw://").split("/")
            if len(parts) < 2 or not parts[0] or not parts[1]:
                raise Invalid(f"ref: {uri!r} is not pw://<namespace>/<name>[/path]", field="ref")
            return await self.get(principal, ResourceRef(parts[0], parts[1]))
        scheme, sep, rest = uri.partition("://")
        if not sep or not scheme or not rest.strip("/"):
            raise Invalid(
                f"ref: {uri!r} is not a storage URI (pw://<namespace>/<name>, s3://<bucket>...)",
                field="ref",
            )
        parts = rest.rstrip("/").split("/")
        roots = [f"{scheme}://{'/'.join(parts[:n])}" for n in range(len(parts), 0, -1)]
        async with self.db.session() as session:
            found = list(
                await session.exec(
                    select(Resource)
                    .join(StorageSession, col(StorageSession.resource_id) == col(Resource.id))
                    .where(col(StorageSession.csp_uri).in_(roots))
                    .where(col(StorageSession.status) != DELETED)
                )
            )
        for row in found:
            try:
                return await self.get(principal, ResourceRef(row.owner, row.name))
            except NotFound:
                continue
        raise NotFound(f"no storage you can see is at {uri}", reason="resource-not-found")

    # --- changes ------------------------------------------------------------------------------

    async def _check_group(self, principal: Principal, group: str) -> None:
        if not group:
            return
        try:
            await self.identity.get_group(principal, group)
        except NotFound:
            raise Invalid(
                f"group: no group named {group!r} in {principal.org}", field="group"
            ) from None

    async def _checked(
        self, org: str, name: str, definition: StorageDefinition
    ) -> StorageDefinition:
        """``definition`` with its options decoded by the type (defaults filled in), after the
        type's own rules; ``Invalid`` naming the field that is wrong."""
        record = self.types.record(definition.type)
        self.types.check_ephemeral(record, definition.ephemeral)
        options = self.types.options(record, definition.storage_options)
        account = await self.types.account(org, record, definition.cloud_account)
        spec = self.types.spec(
            record,
            name=name,
            resource_id="",
            options=options,
            account=account,
            ephemeral=definition.ephemeral,
        )
        await self.types.validate(record, spec)
        return msgspec.structs.replace(
            definition,
            category=record.category,
            storage_options=msgspec.to_builtins(options) if options is not None else {},
        )

    async def create(self, principal: Principal, data: StorageCreate) -> Resource:
        """Store a valid storage, ``stopped``; starting it provisions it."""
        name_rule(self.kernel.resource_kind(STORAGE_KIND)).check(data.name, "name")
        check_description(data.description)
        record = self.types.record(data.type)
        await self._check_group(principal, data.group)
        definition = await self._checked(
            principal.org,
            data.name,
            StorageDefinition(
                type=record.name,
                category=record.category,
                cloud_account=data.cloud_account,
                group=data.group,
                ephemeral=data.ephemeral,
                storage_options=dict(data.storage_options),
            ),
        )
        await self.resources.create(
            STORAGE_KIND,
            org=principal.org,
            owner=principal.username,
            name=data.name,
            spec=msgspec.to_builtins(definition),
            desired_state="stopped",
            display_name=data.display_name,
            description=data.description,
            tags=data.tags,
            actor=principal.username,
            conflict_if_taken=f"you already have a resource named {data.name!r}",
        )
        return await self.get(principal, ResourceRef(principal.username, data.name))

    async def update(self, principal: Principal, ref: ResourceRef, data: StorageUpdate) -> Resource:
        """Change a storage (``view_edit``): its definition only while it is stopped; its cloud
        account and group only as its owner."""
        row = await self.require(principal, ref, VIEW_EDIT)
        assert row.id is not None
        current = definition_of(row)
        changes = {
            name: getattr(data, name)
            for name in (*_DEFINITION_FIELDS, "group")
            if getattr(data, name) is not None and getattr(data, name) != getattr(current, name)
        }
        if await self.access.level(principal, row) != OWNER:
            for name in _OWNER_FIELDS:
                if name in changes:
                    raise PermissionDenied(
                        f"{name}: only the owner of {ref.uri} may change its {name}",
                        reason="owner-only-field",
                        details={"field": name},
                    )
        if data.description is not None:
            check_description(data.description)
        if "group" in changes:
            await self._check_group(principal, changes["group"])
        definition = current
        if changes:
            if any(name in changes for name in _DEFINITION_FIELDS) and not self._stopped(row):
                raise Conflict(
                    f"{ref.uri} is {row.observed_state}: its definition changes only while it "
                    "is stopped",
                    reason="storage-not-stopped",
                )
            definition = await self._checked(
                row.org, row.name, msgspec.structs.replace(current, **changes)
            )
        await self.resources.describe(
            row.id,
            display_name=data.display_name,
            description=data.description,
            tags=data.tags,
        )
        if msgspec.to_builtins(definition) != row.spec:
            await self.resources.set_desired(
                row.id, spec=msgspec.to_builtins(definition), actor=principal.username
            )
        return await self.get(principal, ref)

    @staticmethod
    def _stopped(row: Resource) -> bool:
        return row.desired_state == "stopped" and row.observed_state == "stopped"

    async def delete(self, principal: Principal, ref: ResourceRef) -> None:
        """Delete a stopped storage (its owner); an active one must be stopped first (which
        deletes its data at the cloud)."""
        row = await self.require(principal, ref, OWNER)
        assert row.id is not None
        if not self._stopped(row) or await self.sessions.current(row.id) is not None:
            raise Conflict(
                f"{ref.uri} is {row.observed_state}: stop it first (stopping deletes it and its "
                "data at the cloud)",
                reason="storage-not-stopped",
            )
        await self.resources.delete(row.id, actor=principal.username)

    def _persistent(self, row: Resource, doing: str) -> StorageDefinition:
        definition = definition_of(row)
        if definition.ephemeral:
            raise Conflict(
                f"{doing}: {ResourceRef(row.owner, row.name).uri} is ephemeral: it is created "
                "and destroyed with the cluster it is attached to",
                reason="storage-ephemeral",
            )
        return definition

    async def start(self, principal: Principal, ref: ResourceRef) -> Resource:
        """Provision a storage (``view_edit``): a new session, ``starting``, then ``active``."""
        row = await self.require(principal, ref, VIEW_EDIT)
        assert row.id is not None
        definition = self._persistent(row, "start")
        if row.observed_state == "failed" and row.desired_state == "active":
            raise Conflict(
                f"{ref.uri} failed ({row.reason}): stop it to clean up, then start it again",
                reason="storage-failed",
            )
        record = self.types.record(definition.type)
        await self.types.account(row.org, record, definition.cloud_account)
        await self.resources.set_desired(row.id, desired_state="active", actor=principal.username)
        await self.resources.mark_observed(
            row.id, "starting", unless=("active", "starting", "stopping", "failed")
        )
        return await self.get(principal, ref)

    async def stop(self, principal: Principal, ref: ResourceRef) -> Resource:
        """Delete a storage at the cloud, data included (``view_edit``): ``stopping``, then
        ``stopped``; the definition stays, and a start makes it again, empty."""
        row = await self.require(principal, ref, VIEW_EDIT)
        assert row.id is not None
        self._persistent(row, "stop")
        await self.resources.set_desired(row.id, desired_state="stopped", actor=principal.username)
        await self.resources.mark_observed(row.id, "stopping", unless=("stopped", "stopping"))
        return await self.get(principal, ref)

    async def set_favorite(self, principal: Principal, ref: ResourceRef, favorite: bool) -> None:
        row = await self.get(principal, ref)
        assert row.id is not None
        if favorite and definition_of(row).ephemeral:
            raise Invalid(
                f"favorite: {ref.uri} is ephemeral, and only persistent storage can be a favourite",
                field="favorite",
            )
        async with self.db.session() as session:
            await session.exec(
                delete(StorageFavorite)
                .where(col(StorageFavorite.resource_id) == row.id)
                .where(col(StorageFavorite.user_id) == principal.user_id)
            )
            if favorite:
                session.add(StorageFavorite(resource_id=row.id, user_id=principal.user_id))
            await session.commit()

    # --- sharing ------------------------------------------------------------------------------

    async def sharing(self, principal: Principal, ref: ResourceRef) -> list[StorageShareInfo]:
        await self.require(principal, ref, VIEW_EDIT)
        return [
            StorageShareInfo(
                group=group,
                view_edit=grant.level == VIEW_EDIT,
                mount=grant.level in STORAGE_SHARE_LEVELS,
            )
            for grant, group in await self.access.grants(principal, ref)
        ]

    async def share(
        self, principal: Principal, ref: ResourceRef, group: str, data: StorageShare
    ) -> list[StorageShareInfo]:
        """Set a group's access (the owner): View & Edit (which includes Mount), Mount only, or
        neither (no longer shared with it)."""
        await self.get(principal, ref)
        if data.view_edit or data.mount:
            level = VIEW_EDIT if data.view_edit else MOUNT
            await self.access.share(principal, ref, group, level)
        else:
            try:
                await self.access.unshare(principal, ref, group)
            except NotFound as exc:
                if "is not shared" not in exc.message:
                    raise
        return await self.sharing(principal, ref)

    # --- sessions and logs --------------------------------------------------------------------

    async def list_sessions(self, principal: Principal, ref: ResourceRef) -> list[StorageSession]:
        row = await self.require(principal, ref, VIEW_EDIT)
        assert row.id is not None
        return await self.sessions.history(row.id)

    async def session(self, principal: Principal, ref: ResourceRef, number: int) -> StorageSession:
        row = await self.require(principal, ref, VIEW_EDIT)
        assert row.id is not None
        found = await self.sessions.get(row.id, number)
        if found is None:
            raise NotFound(f"{ref.uri} has no session {session_label(number)}")
        return found

    async def read_log(
        self, principal: Principal, ref: ResourceRef, number: int, tab: str, offset: int = 0
    ) -> tuple[StorageSession, list[StorageLogLine], bool]:
        """Lines of a session's ``provision`` or ``deletion`` log from ``offset``, and whether
        the log is finished (nothing more will be written to it)."""
        if tab not in LOG_TABS:
            raise Invalid(f"log: must be one of {', '.join(LOG_TABS)}", field="log")
        found = await self.session(principal, ref, number)
        assert found.id is not None
        lines = await read_log(self.db, found.id, tab, offset)
        finished = (
            found.status == DELETED
            if tab == DELETION
            else found.status in ("active", "failed", "deleting", DELETED)
        )
        return found, lines, finished

    # --- credentials --------------------------------------------------------------------------

    async def credentials(self, principal: Principal, ref: ResourceRef) -> StorageCredentials:
        """Short-lived credentials for an active bucket (``mount`` or more); 409 when it is not
        active or its type gives none."""
        row = await self.require(principal, ref, MOUNT)
        assert row.id is not None
        definition = definition_of(row)
        record = self.types.record(definition.type)
        if StorageFeature.TEMPORARY_CREDENTIALS not in record.features:
            raise Conflict(
                f"{type_label(record)} storage has no temporary credentials", reason="unsupported"
            )
        current = await self.sessions.current(row.id)
        if row.observed_state != "active" or current is None or current.status != "active":
            raise Conflict(
                f"{ref.uri} is {row.observed_state}: credentials are given only while it is "
                "active (start it first)",
                reason="storage-not-active",
            )
        account = await self.types.account(row.org, record, definition.cloud_account)
        spec = self.types.spec(
            record,
            name=row.name,
            resource_id=current.uid,
            options=self.types.options(record, definition.storage_options),
            account=account,
            tags=cost_tags(row, definition, current),
        )
        info = msgspec.convert(current.info, StorageInfo)
        issued = await self.types.provider(record.name).temporary_credentials(spec, info)
        return StorageCredentials(
            uri=ref.uri,
            csp=record.cloud,
            csp_uri=current.csp_uri,
            bucket_name=issued.bucket_name or info.id,
            region=issued.region or info.region,
            endpoint_url=issued.endpoint_url,
            credentials=dict(issued.credentials),
            env=dict(issued.env),
            commands=list(issued.commands),
            expires_at=issued.expires_at,
        )

    async def bucket_input(
        self, principal: Principal, value: Any, *, csp: Any = None, credentials: bool = False
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """A workflow's ``bucket`` input at run time (spec §5.4): an active bucket the caller
        owns or that is shared with them; ``Invalid`` when there is no such bucket. With
        ``credentials``, also the environment for the cloud's CLI that holds them (what
        ``corral buckets get-token`` prints but ``BUCKET_NAME``: steps have ``bucketName``,
        and that one name for every cloud would make buckets of two clouds clash), else
        ``{}``."""
        text = value.get("uri") or value.get("id") if isinstance(value, dict) else value
        if not isinstance(text, str) or not text:
            raise Invalid("expected a bucket (pw://owner/name or a name of yours)")
        try:
            if "://" in text and not text.startswith("pw://"):
                row = await self.resolve(principal, text)
            else:
                row = await self.get(principal, ResourceRef.parse(text, principal.username))
            await self.access.require_level(principal, row, MOUNT)
        except (NotFound, PermissionDenied, Invalid):
            raise Invalid(f"no bucket {text!r} that you own or that is shared with you") from None
        ref = ResourceRef(row.owner, row.name)
        if row.spec.get("category") != StorageCategory.BUCKET:
            raise Invalid(f"{ref.uri} is {row.spec.get('category')} storage, not a bucket")
        cloud = self.csp_of(row)
        wanted = [csp] if isinstance(csp, str) and csp else list(csp or [])
        if wanted and cloud not in wanted:
            raise Invalid(f"{ref.uri} is on {cloud or 'no cloud'}, not {' or '.join(wanted)}")
        if row.observed_state != "active":
            raise Invalid(f"{ref.uri} is {row.observed_state}: only active buckets can be used")
        result: dict[str, Any] = {
            "type": "bucket",
            "csp": cloud,
            "id": row.id,
            "name": row.name,
            "user": row.owner,
            "uri": ref.uri,
        }
        if credentials:
            try:
                issued = await self.credentials(principal, ref)
            except Conflict as exc:
                raise Invalid(exc.message) from None
            result.update(
                bucketName=issued.bucket_name,
                region=issued.region,
                credentials=dict(issued.credentials),
            )
            if issued.endpoint_url:
                result["endpointUrl"] = issued.endpoint_url
            return result, {k: v for k, v in issued.env.items() if k != "BUCKET_NAME"}
        return result, {}

    # --- what users read ----------------------------------------------------------------------

    async def _permissions(self, principal: Principal, rows: Sequence[Resource]) -> dict[int, str]:
        """What the caller holds on each row: ``owner``, else its highest granted level."""
        held: dict[int, str] = {}
        shared: list[int] = []
        for row in rows:
            assert row.id is not None
            if (
                row.owner == principal.username
                or principal.platform_admin
                or (row.org == principal.org and principal.has(Role.ORG_ADMIN))
            ):
                held[row.id] = OWNER
            else:
                shared.append(row.id)
        if shared:
            async with self.db.session() as session:
                grants = await session.exec(
                    select(Grant.resource_id, Grant.level)
                    .where(col(Grant.resource_id).in_(shared))
                    .where(col(Grant.group_id).in_(list(principal.group_ids) or [-1]))
                )
                for resource_id, level in grants:
                    if level not in STORAGE_SHARE_LEVELS:
                        continue
                    best = held.get(resource_id)
                    if best is None or STORAGE_SHARE_LEVELS.index(
                        level
                    ) > STORAGE_SHARE_LEVELS.index(best):
                        held[resource_id] = level
        return held

    async def _favorites(self, principal: Principal, ids: list[int]) -> set[int]:
        async with self.db.session() as session:
            rows = await session.exec(
                select(StorageFavorite.resource_id)
                .where(col(StorageFavorite.user_id) == principal.user_id)
                .where(col(StorageFavorite.resource_id).in_(ids or [-1]))
            )
            return set(rows)

    async def summaries(
        self, principal: Principal, rows: Sequence[Resource]
    ) -> list[StorageSummary]:
        held = await self._permissions(principal, rows)
        favorites = await self._favorites(principal, [r.id for r in rows if r.id is not None])
        return [
            self._summary(row, held.get(row.id or 0, MOUNT), row.id in favorites) for row in rows
        ]

    def _summary(self, row: Resource, permission: str, favorite: bool) -> StorageSummary:
        return StorageSummary(**self._summary_fields(row, permission, favorite))

    def _summary_fields(self, row: Resource, permission: str, favorite: bool) -> dict[str, Any]:
        record = self.record_of(row)
        definition = definition_of(row)
        return {
            "uri": ResourceRef(row.owner, row.name).uri,
            "owner": row.owner,
            "name": row.name,
            "display_name": row.display_name or row.name,
            "type": definition.type,
            "type_label": type_label(record) if record is not None else definition.type,
            "category": definition.category.value,
            "csp": record.cloud if record is not None else "",
            "ephemeral": definition.ephemeral,
            "status": row.observed_state,
            "reason": row.reason,
            "csp_uri": str(row.status.get("csp_uri") or ""),
            "permission": permission,
            "favorite": favorite,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }

    async def details(self, principal: Principal, row: Resource) -> StorageDetails:
        """A storage with its definition: ``view_edit`` or more (403 for ``mount``)."""
        assert row.id is not None
        await self.access.require_level(principal, row, VIEW_EDIT)
        held = await self._permissions(principal, [row])
        favorite = bool(await self._favorites(principal, [row.id]))
        definition = definition_of(row)
        current = await self.sessions.current(row.id)
        info = (
            msgspec.convert(current.info, StorageInfo)
            if current is not None and current.info
            else StorageInfo(id="", state=StorageState.UNKNOWN)
        )
        return StorageDetails(
            **self._summary_fields(row, held.get(row.id, MOUNT), favorite),
            description=row.description,
            tags=list(row.tags),
            cloud_account=definition.cloud_account,
            group=definition.group,
            storage_options=dict(definition.storage_options),
            session=session_label(current.number) if current is not None else "",
            region=info.region,
            provider_id=info.id,
        )


def session_info(row: StorageSession) -> StorageSessionInfo:
    return StorageSessionInfo(
        session=session_label(row.number),
        status=row.status,  # type: ignore[arg-type]
        reason=row.reason,
        csp_uri=row.csp_uri,
        created_at=row.created_at,
        deleted_at=row.deleted_at,
    )
