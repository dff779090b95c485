"""Provisions storage with its type's provider when it should be active, and deletes it when it
should be stopped.

State lives in the database, so a killed worker loses nothing. A start opens a session (its
``uid`` written before the provider is first called), then asks the provider to provision; a
provision is idempotent on that ``uid`` (the provider names and tags what it makes with it), so a
reconcile that runs again after a kill finds what the killed one made instead of making a second.
What the provider returns is stored on the session at once. A stop deletes what the session
holds (or, when the provider never answered, what it finds by the ``uid``) and ends the session.

Errors the provider marks ``retryable`` (an unreachable or throttling API) are retried with
back-off; any other provisioning error fails the session and the storage with the reason (the
way back is to stop it, which cleans up, and start it again). A deletion is retried until it
succeeds.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from corral_core.storage.logs import DELETION, PROVISION, SessionLog
from corral_core.storage.models import StorageSession
from corral_core.storage.service import StorageService, cost_tags
from corral_core.storage.sessions import session_label
from corral_core.storage.spec import StorageDefinition
from corral_core.storage.types import type_label
from corral_sdk.errors import CorralError, NotFound
from corral_sdk.providers.storage import StorageInfo, StorageSpec, StorageState
from corral_sdk.reconcile import ReconcileContext, ReconcileResult, ResourceSnapshot
from corral_sdk.records import StorageTypeRecord

__all__ = ["POLL_SECONDS", "StorageReconciler"]

log = logging.getLogger("corral.storage")

POLL_SECONDS = 5.0
"""How often a storage the provider is still provisioning is looked at again."""


class StorageReconciler:
    def __init__(self, service: StorageService) -> None:
        self.service = service
        self.db = service.db
        self.sessions = service.sessions
        self.types = service.types

    async def reconcile(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        try:
            definition = msgspec.convert(resource.spec, StorageDefinition)
        except msgspec.ValidationError as exc:
            return ReconcileResult(observed_state="failed", reason=f"invalid definition: {exc}")
        if definition.ephemeral:
            # made and deleted with the cluster it is attached to, not by its own power button
            return ReconcileResult(observed_state="stopped", status={})
        if resource.desired_state == "active":
            return await self._start(resource, definition, ctx)
        current = await self.sessions.current(resource.id)
        if current is None:
            return ReconcileResult(observed_state="stopped", status={})
        return await self._stop(resource, definition, current, ctx)

    def _spec(
        self,
        resource: ResourceSnapshot,
        definition: StorageDefinition,
        record: StorageTypeRecord,
        session: StorageSession,
        account: Any,
    ) -> StorageSpec:
        return self.types.spec(
            record,
            name=resource.name,
            resource_id=session.uid,
            options=self.types.options(record, definition.storage_options),
            account=account,
            ephemeral=definition.ephemeral,
            tags=cost_tags(resource, definition, session),
        )

    async def _start(
        self, resource: ResourceSnapshot, definition: StorageDefinition, ctx: ReconcileContext
    ) -> ReconcileResult:
        current = await self.sessions.current(resource.id)
        if current is not None and current.status == "failed":
            return ReconcileResult(observed_state="failed", reason=current.reason)
        if current is not None and current.status == "active":
            return ReconcileResult(observed_state="active", status=_status(current))
        await self.service.resources.mark_observed(resource.id, "starting", unless=("starting",))
        session, new = await self.sessions.open(resource.id)
        assert session.id is not None
        lines = SessionLog(self.db, session.id, PROVISION, ctx.heartbeat)
        if new:
            await ctx.emit(
                "storage.starting", _event(resource, definition, session, self._csp(definition))
            )
        try:
            record = self.types.record(definition.type)
            account = await self.types.account(resource.org, record, definition.cloud_account)
            spec = self._spec(resource, definition, record, session, account)
            provider = self.types.provider(record.name)
            if not session.info:
                await lines.log(
                    f"Provisioning {type_label(record)} {resource.name} (session "
                    f"{session_label(session.number)})"
                    + (f" in cloud account {account.name}" if account is not None else "")
                )
                info = await provider.provision(spec, log=lines)
            else:
                info = await provider.describe(spec, msgspec.convert(session.info, StorageInfo))
            await self.sessions.set(session.id, info=msgspec.to_builtins(info), csp_uri=info.uri)
        except CorralError as exc:
            if exc.retryable:
                await lines.log(f"Retrying: {exc.message}")
                raise  # the driver retries with back-off; provisioning is idempotent
            return await self._fail(resource, definition, session, lines, exc.message, ctx)
        if info.state is StorageState.PROVISIONING:
            return ReconcileResult(observed_state="starting", requeue_after=POLL_SECONDS)
        if info.state is not StorageState.AVAILABLE:
            reason = f"the provider reports the storage {info.state.value}"
            return await self._fail(resource, definition, session, lines, reason, ctx)
        await self.sessions.set(session.id, status="active", reason="")
        await lines.log(f"Storage active: {info.uri or info.id}")
        session = await self._reload(session)
        await ctx.emit("storage.active", _event(resource, definition, session, record.cloud))
        return ReconcileResult(observed_state="active", status=_status(session))

    async def _reload(self, session: StorageSession) -> StorageSession:
        found = await self.sessions.current(session.resource_id)
        return found if found is not None else session

    def _csp(self, definition: StorageDefinition) -> str:
        try:
            return self.types.record(definition.type).cloud
        except CorralError:
            return ""

    async def _fail(
        self,
        resource: ResourceSnapshot,
        definition: StorageDefinition,
        session: StorageSession,
        lines: SessionLog,
        reason: str,
        ctx: ReconcileContext,
    ) -> ReconcileResult:
        assert session.id is not None
        log.info("storage %s failed: %s", resource.id, reason)
        await lines.log(f"Failed: {reason}")
        await self.sessions.set(session.id, status="failed", reason=reason)
        data = {**_event(resource, definition, session, self._csp(definition)), "reason": reason}
        await ctx.emit("storage.failed", data)
        return ReconcileResult(observed_state="failed", reason=reason, status=_status(session))

    async def _stop(
        self,
        resource: ResourceSnapshot,
        definition: StorageDefinition,
        session: StorageSession,
        ctx: ReconcileContext,
    ) -> ReconcileResult:
        assert session.id is not None
        await self.service.resources.mark_observed(resource.id, "stopping", unless=("stopping",))
        lines = SessionLog(self.db, session.id, DELETION, ctx.heartbeat)
        if session.status != "deleting":
            await self.sessions.set(session.id, status="deleting")
            await lines.log(f"Deleting {resource.name} (session {session_label(session.number)})")
        record = self.types.record(definition.type)  # not installed: retried until it is
        account = None
        if record.cloud:
            try:
                account = await self.types.accounts.get(resource.org, definition.cloud_account)
            except NotFound:
                # accounts are not deleted while storage is provisioned: nothing left to call
                await lines.log(f"Cloud account {definition.cloud_account!r} is gone")
        if account is not None or not record.cloud:
            spec = self._spec(resource, definition, record, session, account)
            info = (
                msgspec.convert(session.info, StorageInfo)
                if session.info
                else StorageInfo(id="", state=StorageState.UNKNOWN)  # found by its uid
            )
            await self.types.provider(record.name).deprovision(spec, info, log=lines)
        await self.sessions.end(session.id)
        await lines.log("Storage deleted")
        await ctx.emit(
            "storage.stopped", _event(resource, definition, session, self._csp(definition))
        )
        return ReconcileResult(observed_state="stopped", status={})


def _status(session: StorageSession) -> dict[str, Any]:
    """What the resource row shows of its current session."""
    info = session.info or {}
    return {
        "session": session.number,
        "csp_uri": session.csp_uri,
        "region": info.get("region", ""),
        "provider_id": info.get("id", ""),
    }


def _event(
    resource: ResourceSnapshot, definition: StorageDefinition, session: StorageSession, csp: str
) -> dict[str, Any]:
    """What storage events carry (costs and webhooks read them)."""
    return {
        "uri": f"pw://{resource.owner}/{resource.name}",
        "owner": resource.owner,
        "name": resource.name,
        "type": definition.type,
        "category": definition.category.value,
        "csp": csp,
        "cloud_account": definition.cloud_account,
        "group": definition.group,
        "session": session_label(session.number),
        "session_uid": session.uid,
        "csp_uri": session.csp_uri,
        "region": str((session.info or {}).get("region", "")),
    }
