"""Sessions the kernel runs (a tunnel into the workspace, against a real local server): running
once the app answers, failed with the reason when it stops answering, stopped when idle, and
refused when pointed at another host than the workspace's own."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import msgspec
import pytest
from sqlmodel import col, update
from workflow_lab import Lab

from corral_core.db import utcnow
from corral_core.resources.models import Resource
from corral_core.sessions.models import SessionActivity
from corral_core.sessions.spec import SESSION_KIND, SessionSpec

pytestmark = pytest.mark.anyio


async def serve() -> tuple[asyncio.Server, int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def session(lab: Lab, name: str, **fields: object) -> Resource:
    made = await lab.runtime.resources.create(
        SESSION_KIND,
        org=lab.principal.org,
        owner=lab.principal.username,
        name=name,
        spec=msgspec.to_builtins(SessionSpec(**fields)),  # type: ignore[arg-type]
        desired_state="running",
        actor=lab.principal.username,
    )
    return await reconciled(lab, made.id or 0)


async def reconciled(lab: Lab, resource_id: int) -> Resource:
    await lab.runtime.reconciler.reconcile(resource_id)
    async with lab.runtime.db.session() as db:
        found = await db.get(Resource, resource_id)
        assert found is not None
        await db.refresh(found)
        return found


async def test_a_tunnel_runs_once_its_app_answers_and_fails_with_the_reason_when_it_dies(
    lab: Lab,
) -> None:
    server, port = await serve()
    running = await session(lab, "web1", remote_port=port)
    assert (running.observed_state, running.reason) == ("running", "")
    server.close()
    await server.wait_closed()
    await lab.runtime.sessions.close(running.id or 0)
    failed = await reconciled(lab, running.id or 0)
    assert failed.observed_state == "failed"
    assert "stopped answering" in failed.reason and str(port) in failed.reason


async def test_a_workspace_session_reaches_only_this_host(lab: Lab) -> None:
    refused = await session(lab, "web2", remote_host="10.1.2.3", remote_port=80)
    assert refused.observed_state != "running"
    assert "not localhost" in refused.reason, refused.reason


async def test_an_unknown_type_fails_naming_the_installed_ones(lab: Lab) -> None:
    failed = await session(lab, "web3", type="nope", remote_port=80)
    assert failed.observed_state == "failed"
    assert "no session type 'nope'" in failed.reason and "tunnel" in failed.reason


async def test_a_session_without_traffic_is_stopped_after_the_idle_time(lab: Lab) -> None:
    server, port = await serve()
    try:
        busy = await session(lab, "busy", remote_port=port)
        idle = await session(lab, "idle", remote_port=port)
        sessions = lab.runtime.sessions
        sessions.touch(busy.id or 0)
        await sessions.flush_activity()
        long_ago = utcnow() - timedelta(hours=2)
        async with lab.runtime.db.session() as db:
            await db.exec(
                update(Resource).where(col(Resource.id) == idle.id).values(updated_at=long_ago)
            )
            await db.commit()
        assert await sessions.cull_idle(3600) == 1
        assert (await reconciled(lab, idle.id or 0)).observed_state == "stopped"
        assert (await reconciled(lab, busy.id or 0)).observed_state == "running"
        async with lab.runtime.db.session() as db:
            assert await db.get(SessionActivity, busy.id) is not None
    finally:
        server.close()


async def test_a_workspace_session_cannot_reach_corrals_own_services(lab: Lab) -> None:
    own = lab.runtime.settings.server.port
    refused = await session(lab, "web4", remote_port=own)
    assert refused.observed_state != "running"
    assert "Corral's own service" in refused.reason, refused.reason
