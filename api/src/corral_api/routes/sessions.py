"""Sessions (spec §9): made by hand or by workflow runs, listed, opened, stopped. Each is a
resource of kind ``session`` (shared with groups through ``/api/resources/.../grants`` at level
``open``); what runs them is :mod:`corral_core.sessions.live`, what serves them is
:mod:`corral_api.proxy`."""

from __future__ import annotations

import logging
import time
from typing import Annotated

import msgspec
from litestar import Controller, delete, get, post
from litestar.params import FromPath, JSONBody, QueryParameter

from corral_api.security import Caller, RuntimeDep
from corral_core.identity.names import ResourceRef
from corral_core.resources.models import Resource
from corral_core.runtime import Runtime
from corral_core.sessions.live import base_path
from corral_core.sessions.spec import SESSION_KIND, WORKSPACE, SessionSpec
from corral_sdk.errors import Conflict, CorralError, Invalid
from corral_sdk.wire import SessionCreate, SessionInfo, SessionList

__all__ = ["SessionController", "session_info"]

log = logging.getLogger("corral.sessions")


def session_info(runtime: Runtime, row: Resource) -> SessionInfo:
    spec = msgspec.convert(row.spec, SessionSpec)
    status = row.status or {}
    open_url = str(status.get("url") or "")
    if not open_url and row.observed_state == "running":
        open_url = (
            runtime.settings.public_url.rstrip("/")
            + base_path(row.owner, row.name)
            + str(status.get("open_path") or spec.slug.lstrip("/"))
        )
    return SessionInfo(
        uri=ResourceRef(row.owner, row.name).uri,
        owner=row.owner,
        name=row.name,
        type=spec.type,
        target=spec.target,
        status=row.observed_state,
        reason=row.reason,
        remote_host=spec.remote_host,
        remote_port=spec.remote_port,
        local_port=spec.local_port,
        slug=spec.slug,
        open_url=open_url,
        run_id=spec.run_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SessionController(Controller):
    path = "/api/sessions"
    tags = ["sessions"]

    @get("/", summary="Your sessions and those shared with you")
    async def list_sessions(
        self,
        principal: Caller,
        runtime: RuntimeDep,
        type: Annotated[str | None, QueryParameter(name="type", max_length=63)] = None,
    ) -> SessionList:
        rows, _ = await runtime.access.list_visible(principal, kind=SESSION_KIND, limit=10_000)
        items = [session_info(runtime, r) for r in rows]
        if type:
            items = [s for s in items if s.type == type]
        return SessionList(items=items, total=len(items))

    @post("/", summary="Start a session (tunnel, link or a plugin's type) on a target")
    async def create_session(
        self, data: JSONBody[SessionCreate], principal: Caller, runtime: RuntimeDep
    ) -> SessionInfo:
        name = data.name or f"{data.type}{int(time.time())}".replace("-", "")
        stored = SessionSpec(
            type=data.type,
            options=data.options,
            target=data.target or WORKSPACE,
            remote_host=data.remote_host or "localhost",
            remote_port=data.remote_port,
            local_port=data.local_port,
            slug=data.slug,
            use_tls=data.use_tls,
            url=data.url,
        )
        # what the type says about these fields is said now (422), not by a failed session
        runtime.sessions.session_type(stored)
        if data.type == "tunnel" and data.remote_port is None:
            raise Invalid("remote_port: a tunnel needs the app's port", field="remote_port")
        if data.type == "link" and not data.url.startswith(("https://", "http://")):
            raise Invalid("url: a link needs an http(s) URL", field="url")
        if stored.target != WORKSPACE and data.type != "link":
            await runtime.targets.runner_for(principal.username, stored.target)
            cluster = await runtime.clusters.get(
                principal, ResourceRef.parse(stored.target, principal.username, "target")
            )
            if cluster.observed_state != "active":
                raise Conflict(
                    f"{stored.target} is {cluster.observed_state}: start it first",
                    reason="cluster-not-active",
                )
        created = await runtime.resources.create(
            SESSION_KIND,
            org=principal.org,
            owner=principal.username,
            name=name,
            spec=msgspec.to_builtins(stored),
            desired_state="running",
            actor=principal.username,
        )
        return session_info(
            runtime, await runtime.access.get(principal, ResourceRef(created.owner, created.name))
        )

    @get("/{owner:str}/{name:str}", summary="One session (pw://owner/name)")
    async def get_session(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> SessionInfo:
        row = await runtime.access.require(principal, ResourceRef(owner, name), "open")
        if row.kind != SESSION_KIND:
            raise Invalid(f"{row.owner}/{row.name} is a {row.kind}, not a session", field="name")
        return session_info(runtime, row)

    @delete(
        "/{owner:str}/{name:str}",
        summary="Stop a session (its service too) and delete it; its workflow run goes on",
        status_code=204,
    )
    async def stop_session(
        self, owner: FromPath[str], name: FromPath[str], principal: Caller, runtime: RuntimeDep
    ) -> None:
        row = await runtime.access.require(principal, ResourceRef(owner, name))
        if row.kind != SESSION_KIND:
            raise Invalid(f"{row.owner}/{row.name} is a {row.kind}, not a session", field="name")
        try:
            await runtime.sessions.stop(row)
        except CorralError as exc:  # the session goes all the same (its cluster may be gone)
            log.warning("session %s/%s: stopping failed: %s", owner, name, exc.log_message)
        await runtime.resources.delete(row.id or 0, actor=principal.username)
