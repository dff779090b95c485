"""Local port forwards (the tunnels of sessions on clusters) through a real OpenSSH sshd on a
loopback port, to a real TCP server of the test's: data both ways and larger than every window
and buffer, ends of file each way, a far side that refuses, the forward outliving its pooled
connection, and that connection not closed as idle while it carries a forwarded one."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncssh
import pytest

from corral_core.db import Database
from corral_core.migrations import upgrade
from corral_core.settings import SSHSettings
from corral_core.ssh.hostkeys import HostKeyStore
from corral_core.ssh.pool import SSHEndpoint, SSHIdentity, SSHPool
from corral_core.ssh.runner import SSHRunner
from corral_core.testing import OpenSSHServer, TestDeployment, free_port

pytestmark = pytest.mark.anyio

BIG = 5 * (1 << 20)
"""More than the channel's 2 MiB window and the sockets' buffers."""


@pytest.fixture
def key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def sshd(tmp_path: Path, key: asyncssh.SSHKey) -> Iterator[OpenSSHServer]:
    public = bytes(key.export_public_key("openssh")).decode()
    server = OpenSSHServer(tmp_path / "sshd", [public])
    try:
        yield server
    finally:
        server.stop()


def make_runner(
    deployment: TestDeployment, sshd: OpenSSHServer, key: asyncssh.SSHKey, **settings: float
) -> SSHRunner:
    db = Database(deployment.settings().database_url)
    upgrade(db)
    pool = SSHPool(SSHSettings(connect_timeout=10, **settings), HostKeyStore(db))
    identity = SSHIdentity("test", "the test", bytes(key.export_private_key()).decode())
    return SSHRunner(pool, identity, SSHEndpoint("127.0.0.1", sshd.username, sshd.port))


@pytest.fixture
def runner(
    deployment: TestDeployment, sshd: OpenSSHServer, key: asyncssh.SSHKey
) -> Iterator[SSHRunner]:
    made = make_runner(deployment, sshd, key)
    try:
        yield made
    finally:
        made.pool.close()


async def serve() -> tuple[asyncio.Server, int]:
    """The app: for each connection, reads a line ``<n> <tag>``, answers ``n`` bytes of a
    pattern and the SHA-256 of everything it read after the line until the client's end of
    file, then closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            size, _, tag = (await reader.readline()).decode().strip().partition(" ")
            writer.write(pattern(int(size), tag))
            digest = hashlib.sha256()
            while data := await reader.read(1 << 16):
                digest.update(data)
            writer.write(digest.hexdigest().encode())
            await writer.drain()
        except ConnectionError:
            pass  # the client went (a closed forward): nothing to answer
        finally:
            await closed(writer)

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def closed(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def pattern(size: int, tag: str) -> bytes:
    block = hashlib.sha256(tag.encode()).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


@contextlib.asynccontextmanager
async def app() -> AsyncIterator[int]:
    server, port = await serve()
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


async def exchange(port: int, size: int, tag: str, upload: bytes) -> tuple[bytes, bytes]:
    """Through the forward at ``port``: ask for ``size`` bytes while sending ``upload``, then
    end the upload; what came back, split into the answer and the digest of the upload."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{size} {tag}\n".encode())

    async def send() -> None:
        for start in range(0, len(upload), 1 << 16):
            writer.write(upload[start : start + (1 << 16)])
            await writer.drain()
        writer.write_eof()

    sending = asyncio.create_task(send())
    received = await asyncio.wait_for(reader.read(), 60)
    await sending
    await closed(writer)
    return received[:-64], received[-64:]


async def test_a_forward_carries_more_than_its_windows_both_ways_at_once(
    runner: SSHRunner,
) -> None:
    async with app() as port:
        forward = await runner.forward("127.0.0.1", port)
        try:
            upload = pattern(BIG, "up")
            results = await asyncio.gather(
                *(exchange(forward.local_port, BIG, f"down{i}", upload) for i in range(3))
            )
            for i, (answer, digest) in enumerate(results):
                assert len(answer) == BIG and answer == pattern(BIG, f"down{i}")
                assert digest.decode() == hashlib.sha256(upload).hexdigest()
            # an answer that ends before the request does: the rest still reaches the app
            answer, digest = await exchange(forward.local_port, 0, "none", b"late" * 1000)
            assert answer == b"" and digest.decode() == hashlib.sha256(b"late" * 1000).hexdigest()
        finally:
            await forward.close()
    assert runner.pool.stats.connections_opened == 1  # every channel on the one connection


async def test_a_connection_the_far_side_refuses_is_closed(runner: SSHRunner) -> None:
    forward = await runner.forward("127.0.0.1", free_port())  # nothing listens there
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", forward.local_port)
        writer.write(b"GET / HTTP/1.0\r\n\r\n")
        try:  # closed unread, so the kernel may answer a reset rather than an end of file
            answer = await asyncio.wait_for(reader.read(), 30)
        except ConnectionResetError:
            answer = b""
        assert answer == b""
        await closed(writer)
    finally:
        await forward.close()


async def test_a_forward_outlives_its_pooled_connection(
    runner: SSHRunner, sshd: OpenSSHServer
) -> None:
    async with app() as port:
        forward = await runner.forward("127.0.0.1", port)
        try:
            assert (await exchange(forward.local_port, 1000, "a", b""))[0] == pattern(1000, "a")
            await runner.pool.call(runner.pool.drop_host("127.0.0.1", sshd.port))  # as a stop does
            answer, _ = await exchange(forward.local_port, 1000, "b", b"")
            assert answer == pattern(1000, "b")
            assert runner.pool.stats.connections_opened == 2
        finally:
            await forward.close()


async def test_closing_a_forward_ends_its_connections_and_stops_listening(
    runner: SSHRunner,
) -> None:
    async with app() as port:
        forward = await runner.forward("127.0.0.1", port)
        reader, writer = await asyncio.open_connection("127.0.0.1", forward.local_port)
        writer.write(b"10 x\n")
        assert await asyncio.wait_for(reader.readexactly(10), 30) == pattern(10, "x")
        await forward.close()
        assert await asyncio.wait_for(reader.read(), 30) == b""
        await closed(writer)
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", forward.local_port)


async def test_a_connection_carrying_a_forward_is_not_closed_as_idle(
    deployment: TestDeployment, sshd: OpenSSHServer, key: asyncssh.SSHKey
) -> None:
    runner = make_runner(deployment, sshd, key, idle_seconds=1)  # looked at every 0.5 s
    try:
        async with app() as port:
            forward = await runner.forward("127.0.0.1", port)
            reader, writer = await asyncio.open_connection("127.0.0.1", forward.local_port)
            writer.write(b"10 x\n")
            assert await asyncio.wait_for(reader.readexactly(10), 30) == pattern(10, "x")
            await asyncio.sleep(2.5)
            assert runner.pool.stats.open_connections == 1
            writer.write_eof()  # the app answers the digest of nothing, and closes
            assert (
                await asyncio.wait_for(reader.read(), 30) == hashlib.sha256().hexdigest().encode()
            )
            await closed(writer)
            for _ in range(300):  # idle now: closed within a second or so
                if runner.pool.stats.open_connections == 0:
                    break
                await asyncio.sleep(0.1)
            assert runner.pool.stats.open_connections == 0
            assert (await exchange(forward.local_port, 10, "y", b""))[0] == pattern(10, "y")
            await forward.close()
    finally:
        runner.pool.close()
