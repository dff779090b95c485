"""The reconcile loop, called directly (no worker), against the suite's database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import msgspec
import pytest

from corral_core.db import utcnow
from corral_core.migrations import upgrade
from corral_core.plugins import PluginSource, load_kernel
from corral_core.resources.models import Resource
from corral_core.runtime import Runtime
from corral_core.testing import TestDeployment
from corral_sdk.errors import Invalid, ProviderError
from corral_sdk.plugin import ReconcileResult, ResourceKindRecord, hookimpl
from corral_sdk.reconcile import ReconcileContext, ResourceSnapshot

pytestmark = pytest.mark.anyio


class PumpSpec(msgspec.Struct, forbid_unknown_fields=True):
    litres_per_minute: int = 10


class PumpReconciler:
    """Records its calls; behaviour per test through class attributes."""

    calls: list[tuple[int, str]] = []
    gate: asyncio.Event | None = None
    fail_with: Exception | None = None
    result_state: str | None = None
    requeue_after: float | None = None

    async def reconcile(self, resource: ResourceSnapshot, ctx: ReconcileContext) -> ReconcileResult:
        type(self).calls.append((resource.generation, resource.desired_state))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_with is not None:
            raise self.fail_with
        await ctx.heartbeat()
        return ReconcileResult(
            observed_state=self.result_state or resource.desired_state,
            reason="pumping" if resource.desired_state == "running" else "",
            status={"seen_generation": resource.generation},
            requeue_after=self.requeue_after,
        )


class PumpPlugin:
    @hookimpl
    def corral_register_resource_kinds(self) -> list[ResourceKindRecord]:
        return [
            ResourceKindRecord(
                name="pump",
                factory=PumpReconciler,
                config=PumpSpec,
                states=("stopped", "starting", "running", "failed"),
                initial_state="stopped",
                terminal_states=frozenset({"stopped", "running", "failed"}),
            )
        ]


@pytest.fixture
async def runtime(deployment: TestDeployment) -> AsyncIterator[Runtime]:
    PumpReconciler.calls = []
    PumpReconciler.gate = None
    PumpReconciler.fail_with = None
    PumpReconciler.result_state = None
    PumpReconciler.requeue_after = None
    source = PluginSource(name="pumps", distribution="corral-pumps", version="1", load=PumpPlugin)
    runtime = Runtime(deployment.settings(), load_kernel(sources=[source]), "all")
    upgrade(runtime.db)
    try:
        yield runtime
    finally:
        await runtime.close()


async def row(runtime: Runtime, resource_id: int) -> Resource:
    async with runtime.db.session() as session:
        found = await session.get(Resource, resource_id)
    assert found is not None
    return found


async def test_reconcile_reaches_desired_state_and_emits_one_event(runtime: Runtime) -> None:
    pump = await runtime.resources.create(
        "pump", org="o", owner="alice", name="p1", desired_state="running"
    )
    assert pump.observed_state == "stopped"
    await runtime.reconciler.reconcile(pump.id)
    await runtime.reconciler.reconcile(pump.id)  # settled: the reconciler is not called again
    stored = await row(runtime, pump.id)
    assert (stored.observed_state, stored.observed_generation, stored.reason) == (
        "running",
        1,
        "pumping",
    )
    assert stored.status == {"seen_generation": 1}
    assert stored.next_reconcile_at is None and stored.lease_owner is None
    assert PumpReconciler.calls == [(1, "running")]
    types = [e.type for e in await runtime.events.read()]
    assert types == ["resource.created", "resource.state_changed"]


async def test_concurrent_reconciles_of_one_resource_run_one_at_a_time(runtime: Runtime) -> None:
    pump = await runtime.resources.create(
        "pump", org="o", owner="alice", name="p1", desired_state="running"
    )
    PumpReconciler.gate = asyncio.Event()
    first = asyncio.create_task(runtime.reconciler.reconcile(pump.id))
    while not PumpReconciler.calls:
        await asyncio.sleep(0.01)
    await asyncio.gather(*(runtime.reconciler.reconcile(pump.id) for _ in range(5)))
    PumpReconciler.gate.set()
    await first
    assert PumpReconciler.calls == [(1, "running")]


async def test_generation_changed_during_reconcile_is_reconciled_next(runtime: Runtime) -> None:
    pump = await runtime.resources.create(
        "pump", org="o", owner="alice", name="p1", desired_state="running"
    )
    PumpReconciler.gate = asyncio.Event()
    task = asyncio.create_task(runtime.reconciler.reconcile(pump.id))
    while not PumpReconciler.calls:
        await asyncio.sleep(0.01)
    await runtime.resources.set_desired(pump.id, desired_state="stopped")
    PumpReconciler.gate.set()
    await task
    assert PumpReconciler.calls == [(1, "running"), (2, "stopped")]
    stored = await row(runtime, pump.id)
    assert (stored.observed_state, stored.observed_generation) == ("stopped", 2)


async def test_failures_back_off_and_keep_the_reason(runtime: Runtime) -> None:
    pump = await runtime.resources.create(
        "pump", org="o", owner="alice", name="p1", desired_state="running"
    )
    PumpReconciler.fail_with = ProviderError("the pump controller did not answer")
    await runtime.reconciler.reconcile(pump.id)
    first = await row(runtime, pump.id)
    assert (first.observed_state, first.attempts) == ("stopped", 1)
    assert first.reason == "the pump controller did not answer"
    assert first.next_reconcile_at is not None and first.next_reconcile_at > utcnow()
    assert pump.id not in await runtime.reconciler.due()
    await runtime.reconciler.reconcile(pump.id)
    second = await row(runtime, pump.id)
    assert second.attempts == 2
    assert second.next_reconcile_at is not None and first.next_reconcile_at is not None
    assert second.next_reconcile_at - utcnow() > first.next_reconcile_at - utcnow() - timedelta(
        seconds=0.1
    )
    PumpReconciler.fail_with = RuntimeError("secret detail that must not reach users")
    await runtime.reconciler.reconcile(pump.id)
    assert (await row(runtime, pump.id)).reason == "internal error while reconciling: RuntimeError"


async def test_moving_states_are_due_again(runtime: Runtime) -> None:
    pump = await runtime.resources.create(
        "pump", org="o", owner="alice", name="p1", desired_state="running"
    )
    PumpReconciler.result_state = "starting"
    PumpReconciler.requeue_after = 0.0
    await runtime.reconciler.reconcile(pump.id)
    assert pump.id in await runtime.reconciler.due()
    PumpReconciler.result_state = None
    PumpReconciler.requeue_after = None
    await runtime.reconciler.reconcile(pump.id)
    assert (await row(runtime, pump.id)).observed_state == "running"
    assert pump.id not in await runtime.reconciler.due()


async def test_expired_lease_of_a_dead_worker_is_taken_over(runtime: Runtime) -> None:
    pump = await runtime.resources.create(
        "pump", org="o", owner="alice", name="p1", desired_state="running"
    )
    async with runtime.db.session() as session:
        stored = await session.get(Resource, pump.id)
        assert stored is not None
        stored.lease_owner = "dead-worker"
        stored.lease_expires_at = utcnow() + timedelta(seconds=60)
        session.add(stored)
        await session.commit()
    await runtime.reconciler.reconcile(pump.id)
    assert PumpReconciler.calls == []  # the lease is still valid
    async with runtime.db.session() as session:
        stored = await session.get(Resource, pump.id)
        assert stored is not None
        stored.lease_expires_at = utcnow() - timedelta(seconds=1)
        stored.next_reconcile_at = stored.lease_expires_at
        session.add(stored)
        await session.commit()
    assert pump.id in await runtime.reconciler.due()
    await runtime.reconciler.reconcile(pump.id)
    assert (await row(runtime, pump.id)).observed_state == "running"


async def test_spec_state_and_name_are_validated(runtime: Runtime) -> None:
    with pytest.raises(Invalid) as error:
        await runtime.resources.create(
            "pump", org="o", owner="alice", name="p1", spec={"litres_per_minute": "lots"}
        )
    assert error.value.field == "spec.litres_per_minute"
    with pytest.raises(Invalid, match="desired_state 'flying' is not a state of pump"):
        await runtime.resources.create(
            "pump", org="o", owner="alice", name="p1", desired_state="flying"
        )
    await runtime.resources.create("pump", org="o", owner="alice", name="p1")
    with pytest.raises(Invalid, match="alice already has a resource named 'p1'"):
        await runtime.resources.create("pump", org="o", owner="alice", name="p1")
    await runtime.resources.create("pump", org="o", owner="bob", name="p1")


async def test_a_kind_whose_plugin_is_gone_waits_with_a_reason(
    runtime: Runtime, deployment: TestDeployment
) -> None:
    pump = await runtime.resources.create(
        "pump", org="o", owner="alice", name="p1", desired_state="running"
    )
    without = Runtime(deployment.settings(), load_kernel(sources=[]), "worker")
    try:
        await without.reconciler.reconcile(pump.id)
        stored = await row(runtime, pump.id)
        assert "no resource kind named 'pump' is installed" in stored.reason
        assert stored.lease_owner is None
    finally:
        await without.close()
