"""The durable event log and its live followers, in the suite's mode (in-process or Redis)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from corral_core.migrations import upgrade
from corral_core.plugins import load_kernel
from corral_core.runtime import Runtime
from corral_core.testing import TestDeployment
from corral_sdk.events import Event

pytestmark = pytest.mark.anyio


@pytest.fixture
async def runtime(deployment: TestDeployment) -> AsyncIterator[Runtime]:
    runtime = Runtime(deployment.settings(), load_kernel(sources=[]), "all")
    upgrade(runtime.db)
    try:
        yield runtime
    finally:
        await runtime.close()


async def test_events_are_read_from_an_offset_in_order(runtime: Runtime) -> None:
    emitted = [await runtime.events.emit(f"test.{i}", subject="s", data={"i": i}) for i in range(5)]
    assert [e.id for e in emitted] == sorted(e.id for e in emitted)
    after_second = await runtime.events.read(after=emitted[1].id)
    assert [e.data["i"] for e in after_second] == [2, 3, 4]


async def test_a_follower_gets_the_backlog_then_live_events_without_gaps(runtime: Runtime) -> None:
    first = await runtime.events.emit("test.backlog")
    received: list[Event] = []

    async def follow() -> None:
        async for event in runtime.events.follow(after=0, poll_seconds=30):
            received.append(event)
            if len(received) == 3:
                return

    follower = asyncio.create_task(follow())
    while not received:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # the follower now waits on the announcement channel
    await runtime.events.emit("test.live.1")
    await runtime.events.emit("test.live.2")
    await asyncio.wait_for(follower, timeout=10)
    assert [e.type for e in received] == ["test.backlog", "test.live.1", "test.live.2"]
    assert received[0].id == first.id


async def test_audit_records_who_did_what(runtime: Runtime) -> None:
    row = await runtime.audit.record(
        actor="alice", action="cluster.start", target="pw://alice/c1", org="o", source="127.0.0.1"
    )
    assert row.id is not None and row.outcome == "success"


async def test_audit_escapes_what_callers_send(runtime: Runtime) -> None:
    row = await runtime.audit.record(actor="ev\x00il" + "x" * 300, action="POST /api/auth/login")
    assert row.actor.startswith("ev\\x00il")
    assert len(row.actor) == 255 and row.actor.endswith("...")
