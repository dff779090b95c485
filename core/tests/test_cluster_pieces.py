"""Pieces of the cluster domain that need no cluster: poll coalescing, host key pinning, the
definition's ``__USER__`` substitution. The end-to-end tests against Slurm are in tests/."""

from __future__ import annotations

import asyncio

import pytest

from corral_core.clusters.jobs import PollCoalescer
from corral_core.clusters.spec import ClusterSpec
from corral_core.db import Database
from corral_core.migrations import upgrade
from corral_core.ssh.hostkeys import HostKeyChanged, HostKeyStore
from corral_core.testing import TestDeployment

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
    spec = ClusterSpec(
        login_host="login", username="__USER__", jump_host="bastion", jump_user="__USER__-jump"
    )
    endpoint = spec.endpoint("jdoe")
    assert (endpoint.username, endpoint.host, endpoint.port) == ("jdoe", "login", 22)
    assert endpoint.jump is not None and endpoint.jump.username == "jdoe-jump"
    assert str(endpoint) == "jdoe@login (through jdoe-jump@bastion)"
