"""Pieces of the cluster domain that need no cluster: poll coalescing, submission batching,
host key pinning, the definition's ``__USER__`` substitution. The end-to-end tests against
Slurm are in tests/."""

from __future__ import annotations

import asyncio

import pytest

from corral_core.clusters.cloud import zone_order
from corral_core.clusters.jobs import PollCoalescer, SubmitBatcher
from corral_core.clusters.spec import ExistingClusterSpec
from corral_core.db import Database
from corral_core.migrations import upgrade
from corral_core.ssh.hostkeys import HostKeyChanged, HostKeyStore
from corral_core.testing import TestDeployment
from corral_sdk.errors import CorralError, Invalid, TransportError
from corral_sdk.providers.scheduler import JobSpec, SubmittedJob

pytestmark = pytest.mark.anyio


async def test_concurrent_callers_share_polls() -> None:
    coalescer = PollCoalescer()
    polls = 0
    started = asyncio.Event()

    async def poll() -> None:
        nonlocal polls
        polls += 1
        started.set()
        await asyncio.sleep(0.05)

    first = asyncio.ensure_future(coalescer.poll(1, poll))
    await started.wait()  # a poll is in flight: everyone arriving now shares the next one
    await asyncio.gather(first, *(coalescer.poll(1, poll) for _ in range(99)))
    assert polls == 2
    await coalescer.poll(2, poll)  # another cluster polls on its own
    assert polls == 3


async def test_a_failed_poll_fails_its_callers_and_the_next_poll_runs() -> None:
    coalescer = PollCoalescer()
    outcomes = iter([RuntimeError("squeue: cannot contact the controller"), None])

    async def poll() -> None:
        outcome = next(outcomes)
        if outcome is not None:
            raise outcome

    with pytest.raises(RuntimeError, match="cannot contact"):
        await coalescer.poll(1, poll)
    await coalescer.poll(1, poll)


async def test_host_keys_pin_on_first_use_and_change_only_when_accepted(
    deployment: TestDeployment,
) -> None:
    db = Database(deployment.settings().database_url)
    upgrade(db)
    store = HostKeyStore(db)
    try:
        assert await store.pin_first_use("h", 22, "ssh-ed25519 AAAA1", "SHA256:one")
        assert await store.pin_first_use("h", 22, "ssh-ed25519 AAAA1", "SHA256:one")
        assert not await store.pin_first_use("h", 22, "ssh-ed25519 AAAA2", "SHA256:two")
        assert [k.fingerprint for k in await store.trusted("h", 22)] == ["SHA256:one"]
        await store.record_offered("h", 22, "ssh-ed25519 AAAA2", "SHA256:two")
        accepted = await store.accept("h", 22, "SHA256:two", "admin")
        assert (accepted.trusted, accepted.accepted_by) == (True, "admin")
        assert [k.fingerprint for k in await store.trusted("h", 22)] == ["SHA256:two"]
        assert await store.trusted("h", 2222) == []  # pins are per port
    finally:
        await db.dispose()


def test_host_key_change_message_names_host_and_both_fingerprints() -> None:
    error = HostKeyChanged("10.0.0.5", 2222, ["SHA256:old"], "SHA256:new")
    assert "10.0.0.5:2222" in error.message
    assert "SHA256:old" in error.message and "SHA256:new" in error.message
    assert error.reason == "host-key-changed"


def test_user_placeholder_becomes_each_users_name() -> None:
    spec = ExistingClusterSpec(
        login_host="login", username="__USER__", jump_host="bastion", jump_user="__USER__-jump"
    )
    endpoint = spec.endpoint("jdoe")
    assert (endpoint.username, endpoint.host, endpoint.port) == ("jdoe", "login", 22)
    assert endpoint.jump is not None and endpoint.jump.username == "jdoe-jump"
    assert str(endpoint) == "jdoe@login (through jdoe-jump@bastion)"


class GatedScheduler:
    """Submits in memory, each command held until the test opens the gate: the batching
    logic alone (the Slurm plugin's tests and the lab tests cover the real commands)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.commands: list[list[str]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def _command(self, names: list[str]) -> list[SubmittedJob | CorralError]:
        self.commands.append(names)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        if "lost" in names:
            raise TransportError("connection lost", reason="connection-lost")
        return [
            Invalid("refused", field="name") if name == "bad" else SubmittedJob(job_id=name)
            for name in names
        ]

    async def submit(self, job: JobSpec) -> SubmittedJob:
        (result,) = await self._command([job.name])
        if isinstance(result, CorralError):
            raise result
        return result

    async def submit_many(self, jobs: list[JobSpec]) -> list[SubmittedJob | CorralError]:
        return await self._command([job.name for job in jobs])


def _job(name: str) -> JobSpec:
    return JobSpec(script="#!/bin/sh\ntrue\n", name=name)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_burst_fills_the_lanes_then_goes_in_batches() -> None:
    batcher, scheduler = SubmitBatcher(), GatedScheduler()
    names = [f"job{i}" for i in range(10)] + ["bad"]
    calls = []
    for name in names:  # one request after the other, as they reach the API
        calls.append(
            asyncio.ensure_future(batcher.submit(("c", "alice"), _job(name), scheduler, batch=True))
        )
        await _settle()
    assert scheduler.commands == [[n] for n in names[: SubmitBatcher.LANES]], "one job each"
    scheduler.gate.set()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert [r.job_id for r in results[:-1]] == names[:-1], "each caller gets its own job"
    assert isinstance(results[-1], Invalid), "a job's own error reaches its caller alone"
    waiting = names[SubmitBatcher.LANES :]
    assert [n for names in scheduler.commands[SubmitBatcher.LANES :] for n in names] == waiting
    assert len(scheduler.commands) < len(names), "the jobs that waited went together"
    assert scheduler.most_in_flight == SubmitBatcher.LANES


async def test_without_batch_submit_each_job_is_its_own_command() -> None:
    batcher, scheduler = SubmitBatcher(), GatedScheduler()
    calls = [
        batcher.submit(("c", "alice"), _job(f"job{i}"), scheduler, batch=False) for i in range(9)
    ]
    scheduler.gate.set()
    await asyncio.gather(*calls)
    assert scheduler.commands == [[f"job{i}"] for i in range(9)]
    assert scheduler.most_in_flight <= SubmitBatcher.LANES


async def test_a_lost_connection_fails_its_batch_and_a_caller_who_left_is_not_sent() -> None:
    batcher, scheduler = SubmitBatcher(), GatedScheduler()
    key = ("c", "alice")
    lanes = []
    for i in range(SubmitBatcher.LANES):
        lanes.append(
            asyncio.ensure_future(batcher.submit(key, _job(f"job{i}"), scheduler, batch=True))
        )
        await _settle()
    left = asyncio.ensure_future(batcher.submit(key, _job("left"), scheduler, batch=True))
    lost = asyncio.ensure_future(batcher.submit(key, _job("lost"), scheduler, batch=True))
    stays = asyncio.ensure_future(batcher.submit(key, _job("stays"), scheduler, batch=True))
    await _settle()
    left.cancel()
    await _settle()
    scheduler.gate.set()
    await asyncio.gather(*lanes)
    with pytest.raises(TransportError):
        await lost
    with pytest.raises(TransportError):
        await stays  # it went with "lost": the whole command failed
    assert "left" not in [n for names in scheduler.commands for n in names], (
        "a caller who left is never submitted"
    )
    other = await batcher.submit(("c", "bob"), _job("bobs"), scheduler, batch=True)
    assert other.job_id == "bobs", "the lanes are free again"


def test_a_multizone_batch_tries_the_zone_holding_most_nodes_then_the_controllers() -> None:
    zones = ["us-east-1b", "us-east-1c", "us-east-1a"]
    # no nodes yet: the controller's zone first when it is one of them, then the given order
    assert zone_order(zones, {}, "us-east-1a") == ("us-east-1a", "us-east-1b", "us-east-1c")
    assert zone_order(zones, {}, "us-east-1d") == tuple(zones)
    # then the zone that already holds the most of the cluster's nodes
    held = {"us-east-1c": 3, "us-east-1b": 1}
    assert zone_order(zones, held, "us-east-1a") == ("us-east-1c", "us-east-1b", "us-east-1a")
